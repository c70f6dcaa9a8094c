import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RETRY_POLICY, delayWarningDue, retryDelay, shouldGiveUp } from './retry-policy.js';

test('waits double from retry_first and stop growing at retry_max', () => {
  const p = DEFAULT_RETRY_POLICY;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map((n) => retryDelay(p, n) / 60_000), [5, 10, 20, 40, 80, 160, 240, 240]);
});

test('gives up and warns by time in the queue', () => {
  const p = { ...DEFAULT_RETRY_POLICY, giveUpMs: 1000, delayWarningMs: 500 };
  assert.equal(shouldGiveUp(p, 0, 999), false);
  assert.equal(shouldGiveUp(p, 0, 1000), true);
  assert.equal(delayWarningDue(p, 0, 499), false);
  assert.equal(delayWarningDue(p, 0, 500), true);
  assert.equal(delayWarningDue({ ...p, delayWarningMs: 0 }, 0, 10_000), false, '0 turns warnings off');
});
