import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DeliveryScheduler } from './delivery-scheduler.js';

describe('DeliveryScheduler', () => {
  test('a job added starts after the caller has run to its end, not inside add()', async () => {
    const started: string[] = [];
    const scheduler = new DeliveryScheduler<string>({
      concurrency: 8,
      attempt: async (job) => {
        started.push(job);
      },
    });
    scheduler.add('a');
    scheduler.add('b');
    // The session that accepted these writes its 250 here, before any attempt has begun.
    await Promise.resolve();
    assert.deepEqual(started, []);
    await nextTurn();
    assert.deepEqual(started, ['a', 'b']);
  });

  test('no more than `concurrency` attempts at once; the next starts as one ends', async () => {
    const running = new Set<number>();
    let most = 0;
    const ends = new Map<number, () => void>();
    const scheduler = new DeliveryScheduler<number>({
      concurrency: 2,
      attempt: (job) =>
        new Promise<void>((resolve) => {
          running.add(job);
          most = Math.max(most, running.size);
          ends.set(job, () => {
            running.delete(job);
            resolve();
          });
        }),
    });
    for (const job of [1, 2, 3]) scheduler.add(job);
    await nextTurn();
    assert.deepEqual([...running], [1, 2]);
    ends.get(1)?.();
    await nextTurn();
    assert.deepEqual([...running].sort(), [2, 3]);
    ends.get(2)?.();
    ends.get(3)?.();
    await scheduler.idle();
    assert.equal(most, 2);
  });

  test('a stopped scheduler starts nothing, even what was added in the same turn', async () => {
    const started: string[] = [];
    const scheduler = new DeliveryScheduler<string>({ concurrency: 1, attempt: async (job) => void started.push(job) });
    scheduler.add('a');
    scheduler.stop();
    await nextTurn();
    assert.deepEqual(started, []);
  });
});
