import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedLimiter } from './keyed-limiter.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('no more than perKey holders of one key; other keys are not held up', async () => {
  const limiter = new KeyedLimiter(2);
  const gates = [deferred(), deferred(), deferred()];
  const started: number[] = [];
  const runs = gates.map((g, i) =>
    limiter.run('a', async () => {
      started.push(i);
      await g.promise;
    }),
  );
  let otherRan = false;
  await limiter.run('b', async () => {
    otherRan = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.ok(otherRan);
  assert.deepEqual(started, [0, 1]);
  assert.equal(limiter.holders('a'), 2);
  gates[0]!.resolve();
  await runs[0];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, [0, 1, 2], 'the waiter gets the freed slot');
  assert.equal(limiter.holders('a'), 2);
  gates[1]!.resolve();
  gates[2]!.resolve();
  await Promise.all(runs);
  assert.equal(limiter.holders('a'), 0, 'an idle key is forgotten');
});

test('a failing holder frees its slot', async () => {
  const limiter = new KeyedLimiter(1);
  await assert.rejects(limiter.run('k', async () => Promise.reject(new Error('disk full'))), /disk full/);
  assert.equal(await limiter.run('k', async () => 42), 42);
  assert.equal(limiter.holders('k'), 0);
});

test('a limit that changes: wider lets waiters in as holders leave, narrower lets holders go unreplaced', async () => {
  let limit = 1;
  const limiter = new KeyedLimiter(() => limit);
  const gates = [deferred(), deferred(), deferred(), deferred()];
  const started: number[] = [];
  const runs = gates.map((g, i) =>
    limiter.run('m', async () => {
      started.push(i);
      await g.promise;
    }),
  );
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, [0]);
  limit = 3;
  gates[0]!.resolve();
  await runs[0];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, [0, 1, 2, 3], 'one release lets in every waiter the wider limit has room for');
  assert.equal(limiter.holders('m'), 3);
  limit = 1;
  gates[1]!.resolve();
  await runs[1];
  assert.equal(limiter.holders('m'), 2, 'above the narrower limit, a leaving holder is not replaced');
  const late = limiter.run('m', async () => started.push(4));
  gates[2]!.resolve();
  await runs[2];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, [0, 1, 2, 3], 'still one holder, the narrower limit: the newcomer waits');
  gates[3]!.resolve();
  await Promise.all([runs[3], late]);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  assert.equal(limiter.holders('m'), 0);
});
