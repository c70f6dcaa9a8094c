import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reply } from '../mail/reply.js';
import { applyOutcome, finishedMark, fresh, restoreStates } from './recipient-state.js';
import { DEFAULT_RETRY_POLICY } from './retry-policy.js';
import { queuedRecipient } from '../store/sqlite-queue.js';

const bob = { address: 'bob@remote.test', params: {}, mailboxes: [] };
const policy = { ...DEFAULT_RETRY_POLICY, firstMs: 1000, maxMs: 4000, giveUpMs: 10_000 };

test('a deferral schedules the next attempt by backoff; past give_up it becomes a bounce', () => {
  const s = fresh(bob);
  const deferred = { kind: 'deferred', reply: reply(451, '4.7.1', 'later'), reason: 'greylisted' } as const;
  assert.equal(applyOutcome(s, deferred, { policy, receivedAt: 0, now: 100 }), 'deferred');
  assert.equal(s.nextAttemptAt, 1100);
  applyOutcome(s, deferred, { policy, receivedAt: 0, now: 2000 });
  assert.equal(s.nextAttemptAt, 4000);
  assert.equal(s.lastStatus, '4.7.1');
  assert.equal(s.lastReply, '451 4.7.1 later', 'the store keeps the reply as one line');
  assert.equal(applyOutcome(s, deferred, { policy, receivedAt: 0, now: 10_000 }), 'failed');
  assert.equal(s.nextAttemptAt, null);
  assert.match(s.lastReason!, /^greylisted; gave up after trying for 10 seconds$/);
});

test('restoring after a restart: the spool says what is finished, the store the schedule', () => {
  const carol = { address: 'carol@remote.test', params: {}, mailboxes: [] };
  const local = { address: 'al@example.test', params: {}, mailboxes: ['al@example.test'] };
  const stored = [
    { ...queuedRecipient(bob.address), status: 'deferred' as const, attempts: 2, nextAttemptAt: 5000 },
    { ...queuedRecipient(carol.address), status: 'failed' as const, attempts: 1 },
    queuedRecipient(local.address),
  ];
  const states = restoreStates([bob, carol, local], new Set([finishedMark(carol.address), 'al@example.test']), stored);
  assert.deepEqual(states.map((s) => [s.status, s.attempts, s.nextAttemptAt]), [['deferred', 2, 5000], ['failed', 1, null], ['delivered', 0, null]]);
});

test('the enhanced status comes from the reply itself, with a fitting default when it has none', () => {
  const s = fresh(bob);
  applyOutcome(s, { kind: 'delivered', reply: reply(250, '2.1.5', 'ok'), remoteHost: 'mx' }, { policy, receivedAt: 0, now: 1 });
  assert.equal(s.lastStatus, '2.1.5');
  const t = fresh(bob);
  applyOutcome(t, { kind: 'delivered', reply: reply(250, undefined, 'ok'), remoteHost: 'mx' }, { policy, receivedAt: 0, now: 1 });
  assert.equal(t.lastStatus, '2.0.0');
  const u = fresh(bob);
  applyOutcome(u, { kind: 'deferred', reply: undefined, reason: 'no route' }, { policy, receivedAt: 0, now: 1 });
  assert.deepEqual([u.lastStatus, u.lastReply], ['4.4.7', '']);
});
