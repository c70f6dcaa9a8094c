import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import { MIGRATIONS } from './migrations.js';
import { StoreError } from './store.js';
import type { Store } from './store.js';
import { deriveCramMd5Secret } from '../auth/cram-md5-secret.js';
import { deriveScramSecret } from '../auth/scram-secrets.js';
import type { UserSecrets } from '../auth/user-secrets.js';

/** Secrets with only a (fake) password hash, as for an account from before SCRAM. */
function hashOnly(passwordHash: string): UserSecrets {
  return { passwordHash };
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-store-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function freshStore(options: SqliteStoreOptions = {}): { store: Store; path: string } {
  const path = join(dir, `db${++counter}`, 'postern.db');
  return { store: openSqliteStore(path, options), path };
}

async function rejectsWith(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof StoreError, `expected StoreError, got ${String(err)}`);
    assert.match(err.message, message);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

describe('SQLite store', () => {
  test('creates the directory and file, uses WAL and records the schema version', async () => {
    const { store, path } = freshStore();
    await store.addDomain('example.test');
    for (const file of [path, `${path}-wal`, `${path}-shm`]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is private: it holds password hashes`);
    }
    await store.close();
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    } finally {
      db.close();
    }
    // Reopening an up-to-date database runs no migration again (it would fail on CREATE TABLE).
    const again = openSqliteStore(path);
    await again.close();
  });

  test('refuses a database from a newer postern', async () => {
    const { store, path } = freshStore();
    await store.close();
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    assert.throws(() => openSqliteStore(path), /newer than this postern understands/);
  });

  test('domains: add, normalize, list, duplicate, remove', async () => {
    const { store } = freshStore();
    try {
      await store.addDomain('Example.TEST.');
      await store.addDomain('bücher.test');
      assert.deepEqual(
        (await store.listDomains()).map((d) => d.name),
        ['example.test', 'xn--bcher-kva.test'],
      );
      assert.equal(await store.isLocalDomain('EXAMPLE.test'), true);
      assert.equal(await store.isLocalDomain('BÜCHER.test'), true);
      assert.equal(await store.isLocalDomain('other.test'), false);
      assert.equal(await store.isLocalDomain('not a domain'), false);
      await rejectsWith(store.addDomain('example.test'), /^domain "example\.test" already exists$/);
      await rejectsWith(store.addDomain('bad domain!'), /is not a valid domain name/);
      assert.equal(await store.removeDomain('example.test'), true);
      assert.equal(await store.removeDomain('example.test'), false);
      assert.equal(await store.isLocalDomain('example.test'), false);
      const created = (await store.listDomains())[0]?.createdAt ?? 0;
      assert.ok(created > 1_600_000_000_000, 'createdAt is in milliseconds since the epoch');
    } finally {
      await store.close();
    }
  });

  test('users: need a local domain, are normalized, listed per domain', async () => {
    const { store } = freshStore();
    try {
      await rejectsWith(
        store.addUser('alice@x.test', hashOnly('h')),
        /^domain "x\.test" is not a local domain; add it first with: postern domain add x\.test$/,
      );
      await store.addDomain('example.test');
      await store.addDomain('other.test');
      await store.addUser('Alice@Example.Test', hashOnly('$scrypt$1'));
      await store.addUser('bob@example.test', hashOnly('$scrypt$2'));
      await store.addUser('carol@other.test', hashOnly('$scrypt$3'));
      await rejectsWith(store.addUser('ALICE@example.test', hashOnly('x')), /^user "alice@example\.test" already exists$/);
      await rejectsWith(store.addUser('alice@', hashOnly('x')), /^"alice@" is not a valid address$/);

      const alice = await store.getUser('alice@EXAMPLE.test');
      assert.equal(alice?.address, 'alice@example.test');
      assert.equal(alice?.passwordHash, '$scrypt$1');
      assert.equal(await store.getUser('nobody@example.test'), undefined);
      assert.equal(await store.getUser('garbage'), undefined);

      assert.deepEqual(
        (await store.listUsers()).map((u) => u.address),
        ['alice@example.test', 'bob@example.test', 'carol@other.test'],
      );
      assert.deepEqual((await store.listUsers('OTHER.test')).map((u) => u.address), ['carol@other.test']);
      assert.deepEqual(await store.listUsers('none.test'), []);

      assert.equal(await store.setUserSecrets('alice@example.test', hashOnly('$scrypt$new')), true);
      assert.equal((await store.getUser('alice@example.test'))?.passwordHash, '$scrypt$new');
      assert.equal(await store.setUserSecrets('zed@example.test', hashOnly('x')), false);

      assert.equal(await store.removeUser('bob@example.test'), true);
      assert.equal(await store.removeUser('bob@example.test'), false);
    } finally {
      await store.close();
    }
  });

  test('aliases: catch-all, multiple targets, remove one or all', async () => {
    const { store } = freshStore();
    try {
      await rejectsWith(store.addAlias('sales@x.test', 'a@b.test'), /is not a local domain; add it first/);
      await store.addDomain('example.test');
      await store.addAlias('Sales@Example.test', 'alice@example.test');
      await store.addAlias('sales@example.test', 'bob@elsewhere.test');
      await store.addAlias('@EXAMPLE.test', 'alice@example.test');
      await rejectsWith(store.addAlias('sales@example.test', 'ALICE@example.test'), /already exists/);
      await rejectsWith(store.addAlias('a@example.test', 'a@example.test'), /cannot point to itself/);
      await rejectsWith(store.addAlias('@', 'a@example.test'), /not a valid alias source/);
      await rejectsWith(store.addAlias('x@example.test', 'nope'), /^"nope" is not a valid address$/);

      assert.deepEqual(await store.aliasTargets('SALES@example.test'), ['alice@example.test', 'bob@elsewhere.test']);
      assert.deepEqual(await store.aliasTargets('@example.test'), ['alice@example.test']);
      assert.deepEqual(await store.aliasTargets('none@example.test'), []);
      assert.deepEqual(await store.listAliases(), [
        { source: '@example.test', target: 'alice@example.test' },
        { source: 'sales@example.test', target: 'alice@example.test' },
        { source: 'sales@example.test', target: 'bob@elsewhere.test' },
      ]);

      assert.equal(await store.removeAlias('sales@example.test', 'bob@elsewhere.test'), true);
      assert.equal(await store.removeAlias('sales@example.test', 'bob@elsewhere.test'), false);
      assert.equal(await store.removeAlias('@example.test'), true);
      assert.deepEqual(await store.listAliases(), [{ source: 'sales@example.test', target: 'alice@example.test' }]);
    } finally {
      await store.close();
    }
  });

  test('user secrets: SCRAM and CRAM-MD5 secrets round-trip; a new password replaces them all', async () => {
    const { store } = freshStore();
    try {
      await store.addDomain('example.test');
      const full: UserSecrets = {
        passwordHash: '$scrypt$full',
        scramSha1: deriveScramSecret('pencil', 'sha1'),
        scramSha256: deriveScramSecret('pencil', 'sha256', 5000),
        cramMd5: deriveCramMd5Secret('pencil'),
      };
      await store.addUser('alice@example.test', full);
      const alice = await store.getUser('alice@example.test');
      assert.deepEqual(
        { passwordHash: alice?.passwordHash, scramSha1: alice?.scramSha1, scramSha256: alice?.scramSha256, cramMd5: alice?.cramMd5 },
        full,
      );
      assert.equal((await store.listUsers())[0]?.scramSha256?.iterations, 5000);

      await store.setUserSecrets('alice@example.test', { passwordHash: '$scrypt$new', scramSha256: full.scramSha256 });
      const changed = await store.getUser('alice@example.test');
      assert.equal(changed?.passwordHash, '$scrypt$new');
      assert.equal(changed?.scramSha1, undefined, 'the old SCRAM-SHA-1 key must not outlive the old password');
      assert.equal(changed?.cramMd5, undefined);
      assert.deepEqual(changed?.scramSha256, full.scramSha256);
    } finally {
      await store.close();
    }
  });

  test('a domain cannot be removed while it has users or aliases', async () => {
    const { store } = freshStore();
    try {
      await store.addDomain('example.test');
      await store.addUser('alice@example.test', hashOnly('h'));
      await store.addAlias('@example.test', 'alice@example.test');
      await rejectsWith(store.removeDomain('example.test'), /still has 1 user and 1 alias; remove them first/);
      await store.removeUser('alice@example.test');
      await rejectsWith(store.removeDomain('example.test'), /still has 0 users and 1 alias/);
      await store.removeAlias('@example.test');
      assert.equal(await store.removeDomain('example.test'), true);
    } finally {
      await store.close();
    }
  });

  for (const queueWriterThread of [false, true]) {
  test(`queue bookkeeping: insert a batch, list, replace, remove${queueWriterThread ? ' (writes on their own thread)' : ''}`, async () => {
    const { store } = freshStore({ queueWriterThread });
    try {
      await store.queueInsert([
        { queueId: 'B2', sender: '', recipients: ['x@y.test'], size: 10, receivedAt: 2000, state: 'active' },
        { queueId: 'A1', sender: 'a@b.test', recipients: ['c@d.test', 'e@f.test'], size: 99, receivedAt: 1000, state: 'hold' },
      ]);
      const list = await store.queueList();
      assert.deepEqual(
        list.map((e) => [e.queueId, e.sender, e.recipients, e.size, e.receivedAt, e.state]),
        [
          ['A1', 'a@b.test', ['c@d.test', 'e@f.test'], 99, 1000, 'hold'],
          ['B2', '', ['x@y.test'], 10, 2000, 'active'],
        ],
      );
      // Without per-recipient states, every recipient reads as queued.
      assert.deepEqual(list[0]!.recipientStates!.map((r) => [r.address, r.status]), [['c@d.test', 'queued'], ['e@f.test', 'queued']]);
      // Writing an entry again replaces it.
      await store.queueInsert([{ queueId: 'A1', sender: 'a@b.test', recipients: ['c@d.test'], size: 99, receivedAt: 1000, state: 'deferred' }]);
      assert.deepEqual((await store.queueGet('A1'))?.state, 'deferred');
      assert.equal((await store.queueList()).length, 2);
      await store.queueRemove(['A1', 'unknown']);
      assert.deepEqual((await store.queueList()).map((e) => e.queueId), ['B2']);
      // Sent without waiting, they are written in the order sent: the removal, then the insert.
      const removal = store.queueRemove(['B2']);
      const insert = store.queueInsert([{ queueId: 'B2', sender: '', recipients: ['z@y.test'], size: 11, receivedAt: 2000, state: 'active' }]);
      await Promise.all([removal, insert]);
      assert.deepEqual((await store.queueList()).map((e) => [e.queueId, e.recipients]), [['B2', ['z@y.test']]]);
    } finally {
      await store.close();
    }
  });
  }

  test('with the queue table written on its own thread, another connection sees each write once it resolves', async () => {
    const { store: server, path } = freshStore({ queueWriterThread: true });
    const cli = openSqliteStore(path);
    try {
      const entries = Array.from({ length: 200 }, (_, i) => ({ queueId: `Q${String(i).padStart(3, '0')}`, sender: '', recipients: ['r@x.test'], size: i, receivedAt: i, state: 'active' as const }));
      await server.queueInsert(entries);
      assert.equal((await cli.queueList()).length, 200);
      await server.queueRemove(entries.slice(0, 150).map((e) => e.queueId));
      assert.deepEqual((await cli.queueList()).map((e) => e.queueId), entries.slice(150).map((e) => e.queueId));
    } finally {
      await cli.close();
      await server.close();
    }
    // close() waited for the thread: the file can be opened and read at once.
    const again = openSqliteStore(path);
    assert.equal((await again.queueList()).length, 50);
    await again.close();
  });

  test('two stores on one file (server and CLI) see each other from the next turn of the event loop', async () => {
    const { store: server, path } = freshStore();
    const cli = openSqliteStore(path);
    try {
      assert.equal(await server.isLocalDomain('example.test'), false);
      await cli.addDomain('example.test');
      await nextTurn();
      assert.equal(await server.isLocalDomain('example.test'), true);
      await cli.addUser('alice@example.test', hashOnly('h1'));
      await nextTurn();
      assert.equal((await server.getUser('alice@example.test'))?.passwordHash, 'h1');
      await cli.setUserSecrets('alice@example.test', hashOnly('h2'));
      await nextTurn();
      assert.equal((await server.getUser('alice@example.test'))?.passwordHash, 'h2');
      await server.queueInsert([{ queueId: 'Q', sender: '', recipients: [], size: 1, receivedAt: 1, state: 'active' }]);
      assert.deepEqual((await cli.queueList()).map((e) => e.queueId), ['Q']);
      await cli.removeUser('alice@example.test');
      await nextTurn();
      assert.equal(await server.getUser('alice@example.test'), undefined);
    } finally {
      await cli.close();
      await server.close();
    }
  });

  test("Dovecot's views: SCRAM-SHA-256 secrets in Dovecot's form, Maildir names for every account, changes seen at once", async () => {
    const { store, path } = freshStore();
    // Another process, as Dovecot's auth worker is: a second connection on the same file.
    const dovecot = new Database(path, { readonly: true });
    try {
      await store.addDomain('example.test');
      const secret = deriveScramSecret('pencil', 'sha256', 5000);
      await store.addUser('alice@example.test', { passwordHash: 'h', scramSha256: secret });
      await store.addUser("O'Brien@Example.test", { passwordHash: 'h', scramSha256: deriveScramSecret('x', 'sha256') });
      await store.addUser('old@example.test', hashOnly('h'));
      const passwords = dovecot.prepare('SELECT user, password FROM dovecot_passwords WHERE user = ?');
      const b64 = (b: Buffer) => b.toString('base64');
      assert.deepEqual(passwords.get('alice@example.test'), {
        user: 'alice@example.test',
        password: `{SCRAM-SHA-256}5000,${b64(secret.salt)},${b64(secret.storedKey)},${b64(secret.serverKey)}`,
      });
      assert.equal(passwords.get('old@example.test'), undefined, 'no SCRAM-SHA-256 secret: no Dovecot login');
      const mailboxes = dovecot.prepare('SELECT user, maildir FROM dovecot_mailboxes ORDER BY user').all();
      assert.deepEqual(mailboxes, [
        { user: 'alice@example.test', maildir: 'example.test/alice' },
        { user: "o'brien@example.test", maildir: 'example.test/o%27brien' },
        { user: 'old@example.test', maildir: 'example.test/old' },
      ]);
      const fresh = deriveScramSecret('new', 'sha256');
      await store.setUserSecrets('alice@example.test', { passwordHash: 'h2', scramSha256: fresh });
      const changed = passwords.get('alice@example.test') as { password: string } | undefined;
      assert.ok(changed?.password.startsWith(`{SCRAM-SHA-256}4096,${b64(fresh.salt)},`), 'the new secret, at once');
      await store.setUserSecrets('alice@example.test', hashOnly('h3'));
      assert.equal(passwords.get('alice@example.test'), undefined, 'a password without SCRAM secrets ends Dovecot logins');
      await store.removeUser('alice@example.test');
      assert.equal(dovecot.prepare("SELECT 1 FROM dovecot_mailboxes WHERE user = 'alice@example.test'").get(), undefined);
    } finally {
      dovecot.close();
      await store.close();
    }
  });

  test('migration 5 names the Maildirs of accounts that existed before it', async () => {
    const path = join(dir, `db${++counter}`, 'postern.db');
    mkdirSync(dirname(path));
    // A database as migrations 1 to 4 left it, with one account in it.
    const db = new Database(path);
    for (const m of MIGRATIONS.slice(0, 4)) {
      if (typeof m === 'string') db.exec(m);
      else m(db);
    }
    db.exec("INSERT INTO domains VALUES ('example.test', 1)");
    db.exec("INSERT INTO users (address, domain, password_hash, created_at) VALUES ('.dot@example.test', 'example.test', 'h', 1)");
    db.pragma('user_version = 4');
    db.close();
    const store = openSqliteStore(path);
    await store.close();
    const after = new Database(path, { readonly: true });
    try {
      assert.deepEqual(after.prepare('SELECT user, maildir FROM dovecot_mailboxes').all(), [{ user: '.dot@example.test', maildir: 'example.test/%2Edot' }]);
    } finally {
      after.close();
    }
  });

  test('an unopenable path is a StoreError naming the file', () => {
    assert.throws(
      () => openSqliteStore(join('/dev/null', 'x', 'postern.db')),
      (err: unknown) => err instanceof StoreError && /cannot open the store "\/dev\/null\/x\/postern\.db"/.test(err.message),
    );
  });
});
