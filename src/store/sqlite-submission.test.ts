import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from './sqlite-store.js';
import { StoreError, type Store } from './store.js';

const ALICE = 'alice@ours.test';
let dir: string;
let store: Store;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-submission-store-'));
  store = openSqliteStore(join(dir, 'postern.db'));
  await store.addDomain('ours.test');
  await store.addUser(ALICE, { passwordHash: '$scrypt$test' });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('submission tables', () => {
  test('limits: set, keep, clear; no row is left when every override is cleared', async () => {
    assert.deepEqual(await store.getUserLimits(ALICE), {});
    await store.setUserLimits('ALICE@ours.test', { maxMessagesPerHour: 5, senderPolicy: 'any' });
    await store.setUserLimits(ALICE, { maxRecipientsPerDay: 0 });
    assert.deepEqual(await store.getUserLimits(ALICE), { maxMessagesPerHour: 5, maxRecipientsPerDay: 0, senderPolicy: 'any' });
    await store.setUserLimits(ALICE, { maxMessagesPerHour: null, maxRecipientsPerDay: null, senderPolicy: null });
    assert.deepEqual(await store.getUserLimits(ALICE), {});
  });

  test('limits: bad numbers and unknown users are StoreErrors', async () => {
    await assert.rejects(store.setUserLimits(ALICE, { maxMessagesPerHour: -1 }), StoreError);
    await assert.rejects(store.setUserLimits(ALICE, { maxRecipientsPerDay: 1.5 }), StoreError);
    await assert.rejects(store.setUserLimits('ghost@ours.test', { maxMessagesPerHour: 1 }), /does not exist/);
  });

  test('grants are normalized, unique, and go with the user', async () => {
    await store.addUser('bob@ours.test', { passwordHash: '$scrypt$test' });
    await store.addSenderGrant('bob@ours.test', 'X@Other.Test');
    await store.addSenderGrant('bob@ours.test', '@OTHER.test');
    await assert.rejects(store.addSenderGrant('bob@ours.test', 'x@other.test'), /already/);
    await assert.rejects(store.addSenderGrant('bob@ours.test', 'nonsense'), StoreError);
    await store.setUserLimits('bob@ours.test', { maxMessagesPerHour: 1 });
    assert.deepEqual(await store.listSenderGrants('bob@ours.test'), ['@other.test', 'x@other.test']);
    assert.equal(await store.removeUser('bob@ours.test'), true);
    assert.deepEqual(await store.listSenderGrants('bob@ours.test'), []);
    assert.deepEqual(await store.getUserLimits('bob@ours.test'), {});
  });

  test('counters: saved in one batch, read back, overwritten', async () => {
    const w = (start: number, current: number, previous: number) => ({ start, current, previous });
    await store.saveSubmissionCounters(
      new Map([
        [ALICE, { messages: w(1, 2, 3), recipients: w(4, 5, 6) }],
        ['gone@ours.test', { messages: w(0, 1, 0), recipients: w(0, 1, 0) }],
      ]),
    );
    assert.deepEqual(await store.loadSubmissionCounters(ALICE), { messages: w(1, 2, 3), recipients: w(4, 5, 6) });
    await store.saveSubmissionCounters(new Map([[ALICE, { messages: w(7, 8, 9), recipients: w(4, 5, 6) }]]));
    assert.deepEqual((await store.loadSubmissionCounters(ALICE))?.messages, w(7, 8, 9));
    assert.equal(await store.loadSubmissionCounters('nobody@ours.test'), undefined);
  });
});
