import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from './sqlite-store.js';
import type { GreylistTriplet, Store } from './store.js';

let dir: string;
let path: string;
let store: Store;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-greylist-store-'));
  path = join(dir, 'postern.db');
  store = openSqliteStore(path);
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const triplet = (sender: string): GreylistTriplet => ({ client: '192.0.2.0/24', sender, recipient: 'alice@ours.test' });

describe('greylist tables', () => {
  test('sightings and clients: absent, saved, replaced, and kept across a reopen', async () => {
    assert.equal(await store.greylistSighting(triplet('a@remote.test')), undefined);
    await store.saveGreylistSighting(triplet('a@remote.test'), { firstSeen: 1000, lastSeen: 1000 });
    await store.saveGreylistSighting(triplet('a@remote.test'), { firstSeen: 1000, lastSeen: 5000 });
    // The null sender is a sender of its own.
    await store.saveGreylistSighting(triplet(''), { firstSeen: 7, lastSeen: 8 });
    await store.saveGreylistClient('192.0.2.0/24', { passed: 1, lastSeen: 5000 });
    await store.saveGreylistClient('192.0.2.0/24', { passed: 2, lastSeen: 6000 });
    await store.close();
    store = openSqliteStore(path);
    assert.deepEqual(await store.greylistSighting(triplet('a@remote.test')), { firstSeen: 1000, lastSeen: 5000 });
    assert.deepEqual(await store.greylistSighting(triplet('')), { firstSeen: 7, lastSeen: 8 });
    assert.deepEqual(await store.greylistClient('192.0.2.0/24'), { passed: 2, lastSeen: 6000 });
    assert.equal(await store.greylistClient('198.51.100.0/24'), undefined);
  });

  test('purge: old rows go, and unpassed triplets past their retry window; passed ones stay until max age', async () => {
    const delayMs = 300;
    await store.saveGreylistSighting(triplet('old@remote.test'), { firstSeen: 0, lastSeen: 10_000 });
    await store.saveGreylistSighting(triplet('unpassed@remote.test'), { firstSeen: 50_000, lastSeen: 50_100 });
    await store.saveGreylistSighting(triplet('passed@remote.test'), { firstSeen: 50_000, lastSeen: 50_300 });
    await store.saveGreylistSighting(triplet('recent@remote.test'), { firstSeen: 90_000, lastSeen: 90_000 });
    await store.saveGreylistClient('old.client', { passed: 3, lastSeen: 10_000 });
    await store.saveGreylistClient('new.client', { passed: 3, lastSeen: 90_000 });
    const gone = await store.purgeGreylist({ seenBefore: 20_000, unpassedSeenBefore: 60_000, delayMs });
    assert.equal(await store.greylistSighting(triplet('old@remote.test')), undefined);
    assert.equal(await store.greylistSighting(triplet('unpassed@remote.test')), undefined);
    assert.ok(await store.greylistSighting(triplet('passed@remote.test')));
    assert.ok(await store.greylistSighting(triplet('recent@remote.test')));
    assert.equal(await store.greylistClient('old.client'), undefined);
    assert.ok(await store.greylistClient('new.client'));
    // Rows of the first test (last seen at 5000 and 8, a client at 6000) are old too.
    assert.deepEqual(gone, { triplets: 4, clients: 2 });
  });
});
