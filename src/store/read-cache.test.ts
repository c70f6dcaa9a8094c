import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { openSqliteStore } from './sqlite-store.js';
import { ReadCache } from './read-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'postern-read-cache-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Two connections to a new WAL database holding `schema`, and a question asked through ours. */
function twoConnections(file: string, schema: string, generationQuery?: string): { ours: Database.Database; theirs: Database.Database; ask: () => number } {
  const path = join(dir, file);
  const ours = new Database(path);
  ours.pragma('journal_mode = WAL');
  ours.exec(schema);
  const theirs = new Database(path);
  const cache = new ReadCache(ours, generationQuery);
  let computed = 0;
  return { ours, theirs, ask: () => cache.get('q', () => ++computed) };
}

test('an answer is computed once while nothing changes, and again after any commit: ours at once, another connection\'s from the next turn', async () => {
  const { ours, theirs, ask } = twoConnections('raw.db', 'CREATE TABLE t (v TEXT)');
  assert.equal(ask(), 1);
  assert.equal(ask(), 1, 'cached');
  theirs.prepare('INSERT INTO t VALUES (?)').run('x');
  await nextTurn();
  assert.equal(ask(), 2, 'another connection committed');
  assert.equal(ask(), 2);
  ours.prepare('INSERT INTO t VALUES (?)').run('y');
  assert.equal(ask(), 3, 'this connection changed a row');
  ours.close();
  theirs.close();
});

test('the store sees users, domains and aliases another process adds or removes from the next turn of the event loop', async () => {
  const path = join(dir, 'store', 'postern.db');
  const server = openSqliteStore(path);
  const cli = openSqliteStore(path);
  try {
    assert.equal(await server.isLocalDomain('example.test'), false);
    await cli.addDomain('example.test');
    await nextTurn();
    assert.equal(await server.isLocalDomain('Example.Test'), true);
    assert.equal(await server.getUser('alice@example.test'), undefined);
    await cli.addUser('alice@example.test', { passwordHash: 'h' });
    await nextTurn();
    assert.equal((await server.getUser('alice@example.test'))?.address, 'alice@example.test');
    assert.deepEqual(await server.aliasTargets('sales@example.test'), []);
    await cli.addAlias('sales@example.test', 'alice@example.test');
    await nextTurn();
    const targets = await server.aliasTargets('sales@example.test');
    assert.deepEqual(targets, ['alice@example.test']);
    targets.push('mallory@evil.test');
    assert.deepEqual(await server.aliasTargets('sales@example.test'), ['alice@example.test'], 'a caller cannot change the cached answer');
    await cli.removeUser('alice@example.test');
    await nextTurn();
    assert.equal(await server.getUser('alice@example.test'), undefined, 'a removed user is gone at once');
    // The server's own change is seen too.
    assert.equal(await server.getUser('bob@example.test'), undefined);
    await server.addUser('bob@example.test', { passwordHash: 'h' });
    assert.equal((await cli.getUser('bob@example.test'))?.address, 'bob@example.test');
    assert.equal((await server.getUser('bob@example.test'))?.address, 'bob@example.test');
  } finally {
    await server.close();
    await cli.close();
  }
});

test('with a generation query, commits that leave the generation alone keep the answers; a new generation empties them', async () => {
  const schema = 'CREATE TABLE t (v TEXT); CREATE TABLE gen (n INTEGER NOT NULL); INSERT INTO gen VALUES (0)';
  const { ours, theirs, ask } = twoConnections('generation.db', schema, 'SELECT n FROM gen');
  assert.equal(ask(), 1);
  theirs.prepare('INSERT INTO t VALUES (?)').run('x');
  await nextTurn();
  assert.equal(ask(), 1, 'another connection wrote another table');
  ours.prepare('INSERT INTO t VALUES (?)').run('y');
  assert.equal(ask(), 1, 'this connection wrote another table');
  theirs.exec('UPDATE gen SET n = n + 1');
  await nextTurn();
  assert.equal(ask(), 2, 'another connection moved the generation');
  ours.exec('UPDATE gen SET n = n + 1');
  assert.equal(ask(), 3, 'this connection moved the generation');
  ours.close();
  theirs.close();
});

test('every change to a table the cache answers from moves the directory generation; the queue does not', () => {
  const path = join(dir, 'triggers', 'postern.db');
  openSqliteStore(path).close();
  const db = new Database(path);
  const generation = (): number => db.prepare<[], number>('SELECT n FROM directory_generation').pluck().get() ?? -1;
  const changes: Array<[string, string]> = [
    ['domains insert', "INSERT INTO domains (name, created_at) VALUES ('example.test', 0)"],
    ['domains update', "UPDATE domains SET created_at = 1 WHERE name = 'example.test'"],
    ['users insert', "INSERT INTO users (address, domain, maildir, password_hash, created_at) VALUES ('a@example.test', 'example.test', 'a', 'h', 0)"],
    ['users update', "UPDATE users SET password_hash = 'h2' WHERE address = 'a@example.test'"],
    ['aliases insert', "INSERT INTO aliases (source, target, domain) VALUES ('s@example.test', 'a@example.test', 'example.test')"],
    ['aliases update', "UPDATE aliases SET target = 'b@example.test'"],
    ['aliases delete', 'DELETE FROM aliases'],
    ['user_limits insert', "INSERT INTO user_limits (account, max_messages_per_hour) VALUES ('a@example.test', 5)"],
    ['user_limits update', 'UPDATE user_limits SET max_messages_per_hour = 6'],
    ['user_limits delete', 'DELETE FROM user_limits'],
    ['sender_grants insert', "INSERT INTO sender_grants (account, address) VALUES ('a@example.test', '@example.test')"],
    ['sender_grants update', "UPDATE sender_grants SET address = 'x@example.test'"],
    ['sender_grants delete', 'DELETE FROM sender_grants'],
    ['users delete', 'DELETE FROM users'],
    ['domains delete', 'DELETE FROM domains'],
  ];
  try {
    for (const [what, sql] of changes) {
      const before = generation();
      assert.equal(db.prepare(sql).run().changes, 1, what);
      assert.ok(generation() > before, `${what} moves the generation`);
    }
    const before = generation();
    db.prepare("INSERT INTO queue (queue_id, sender, recipients, size, received_at, state) VALUES ('Q1', '', '[]', 1, 0, 'active')").run();
    db.prepare("DELETE FROM queue WHERE queue_id = 'Q1'").run();
    assert.equal(generation(), before, 'queue rows are not the directory');
  } finally {
    db.close();
  }
});

test("the store's answers survive the queue's writes on another connection", async () => {
  const path = join(dir, 'queue-writes', 'postern.db');
  const server = openSqliteStore(path);
  const other = openSqliteStore(path);
  try {
    await server.addDomain('example.test');
    await server.addUser('alice@example.test', { passwordHash: 'h' });
    const first = await server.getUser('alice@example.test');
    assert.ok(first);
    await other.queueInsert([{ queueId: 'Q1', sender: '', recipients: ['alice@example.test'], size: 1, receivedAt: 0, state: 'active' }]);
    await nextTurn();
    assert.equal(await server.getUser('alice@example.test'), first, 'the same answer, not computed again');
    await other.setUserSecrets('alice@example.test', { passwordHash: 'h2' });
    await nextTurn();
    assert.equal((await server.getUser('alice@example.test'))?.passwordHash, 'h2', 'a directory change is seen from the next turn');
  } finally {
    await server.close();
    await other.close();
  }
});
