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

test('an answer is computed once while nothing changes, and again after any commit: ours at once, another connection\'s from the next turn', async () => {
  const path = join(dir, 'raw.db');
  const ours = new Database(path);
  ours.pragma('journal_mode = WAL');
  ours.exec('CREATE TABLE t (v TEXT)');
  const theirs = new Database(path);
  const cache = new ReadCache(ours);
  let computed = 0;
  const ask = (): number => cache.get('q', () => ++computed);
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
