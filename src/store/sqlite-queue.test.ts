import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from './sqlite-store.js';
import type { QueueEntry } from './store.js';

function withStore(use: (path: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-queue-store-'));
  return use(join(dir, 'postern.db')).finally(() => rmSync(dir, { recursive: true, force: true }));
}

const entry: QueueEntry = {
  queueId: 'Q1AAAAAAAAAA',
  sender: 'alice@example.test',
  recipients: ['bob@remote.test', 'carol@remote.test'],
  size: 1234,
  receivedAt: 1000,
  state: 'deferred',
  envid: 'env-42',
  ret: 'HDRS',
  delayWarned: true,
  recipientStates: [
    {
      address: 'bob@remote.test',
      status: 'deferred',
      attempts: 3,
      nextAttemptAt: 9000,
      lastAttemptAt: 5000,
      lastReply: '451 4.7.1 Try again later',
      lastReason: 'the receiving server asked us to try again later',
      remoteHost: 'mx.remote.test',
      notify: ['FAILURE', 'DELAY'],
      orcpt: { addrType: 'rfc822', address: 'Bob@Remote.test' },
    },
    {
      address: 'carol@remote.test',
      status: 'delivered',
      attempts: 1,
      nextAttemptAt: null,
      lastAttemptAt: 5000,
      lastReply: '250 2.0.0 Ok',
      lastReason: null,
      remoteHost: 'mx.remote.test',
      notify: [],
      orcpt: null,
    },
  ],
};

test('per-recipient state survives the round trip and a second process sees it', () =>
  withStore(async (path) => {
    const server = openSqliteStore(path);
    const cli = openSqliteStore(path);
    try {
      await server.queueInsert([entry]);
      assert.deepEqual(await cli.queueGet(entry.queueId), entry);
      assert.deepEqual(await cli.queueList(), [entry]);
      const bobDone = { ...entry.recipientStates![0]!, status: 'delivered' as const, nextAttemptAt: null };
      await server.queueInsert([{ ...entry, state: 'active', recipientStates: [bobDone, entry.recipientStates![1]!] }]);
      assert.deepEqual((await cli.queueGet(entry.queueId))?.recipientStates?.map((r) => r.status), ['delivered', 'delivered']);
      await server.queueRemove([entry.queueId]);
      assert.equal(await cli.queueGet(entry.queueId), undefined);
      assert.deepEqual(await cli.queueList(), []);
    } finally {
      await cli.close();
      await server.close();
    }
  }));

test('operator requests are filed by one process and taken by the other', () =>
  withStore(async (path) => {
    const server = openSqliteStore(path);
    const cli = openSqliteStore(path);
    try {
      const hold = await cli.queueAddRequest('hold', 'Q1AAAAAAAAAA');
      const flush = await cli.queueAddRequest('flush', null);
      assert.ok(flush > hold);
      const seen = await server.queueRequests();
      assert.deepEqual(seen.map((r) => [r.id, r.action, r.queueId]), [[hold, 'hold', 'Q1AAAAAAAAAA'], [flush, 'flush', null]]);
      await server.queueRequestsDone([hold]);
      assert.deepEqual((await cli.queueRequests()).map((r) => r.id), [flush]);
    } finally {
      await cli.close();
      await server.close();
    }
  }));
