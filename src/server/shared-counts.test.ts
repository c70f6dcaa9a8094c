import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../config/schema.js';
import { AUTH_LOCKED_OUT, AuthThrottle, authThrottleOptions } from '../policy/auth-throttle.js';
import { ClientRateLimits, clientRateRules } from '../policy/client-rate.js';
import { SharedCounts } from './shared-counts.js';
import type { AuthEvent } from './worker-protocol.js';

const MINUTE = 60_000;

/** A process's counts, as the primary and a session worker each build them. */
function processCounts(clock: { now: number }, toml: { ip_max_failures?: number; max_tracked?: number } = {}) {
  const config = configSchema.parse({ auth: { throttle: toml }, limits: { client_message_rate: 2 } });
  const throttle = new AuthThrottle(authThrottleOptions(config.auth.throttle, { now: () => clock.now }));
  const rates = new ClientRateLimits(clientRateRules(config), { now: () => clock.now });
  return { throttle, rates, counts: new SharedCounts(throttle, rates) };
}

const failure = (ip: string, account?: string): AuthEvent => ({ type: 'auth', outcome: 'failure', ip, account });

describe('SharedCounts', () => {
  test('a worker started again decides as the primary\'s copy of the relayed events does', () => {
    const clock = { now: Date.UTC(2024, 0, 1) };
    const primary = processCounts(clock, { ip_max_failures: 3 });
    for (let i = 0; i < 3; i++) primary.counts.countElsewhere(failure('192.0.2.1', 'alice@ours.test'));
    primary.counts.countElsewhere(failure('192.0.2.2'));
    primary.counts.countElsewhere(failure('192.0.2.2'));
    primary.counts.countElsewhere({ type: 'message-counted', ip: '198.51.100.1' });
    primary.counts.countElsewhere({ type: 'message-counted', ip: '198.51.100.1' });
    clock.now += MINUTE / 2;
    const worker = processCounts(clock, { ip_max_failures: 3 });
    // Structured clone, as the IPC channel passes it.
    worker.counts.restore(structuredClone(primary.counts.records()));
    assert.deepEqual(worker.throttle.beforeAttempt('192.0.2.1'), AUTH_LOCKED_OUT);
    assert.equal(worker.throttle.beforeAttempt('192.0.2.2'), undefined);
    worker.throttle.failure('192.0.2.2', undefined);
    assert.deepEqual(worker.throttle.beforeAttempt('192.0.2.2'), AUTH_LOCKED_OUT);
    assert.equal(worker.rates.checkMessage('198.51.100.1', 'mx')?.code, 450);
    assert.equal(worker.rates.checkMessage('198.51.100.2', 'mx'), undefined);
  });

  test('a success relayed clears the IP\'s count in the copy, as in every worker', () => {
    const clock = { now: Date.UTC(2024, 0, 1) };
    const primary = processCounts(clock, { ip_max_failures: 3 });
    primary.counts.countElsewhere(failure('192.0.2.1', 'alice@ours.test'));
    primary.counts.countElsewhere(failure('192.0.2.1', 'alice@ours.test'));
    primary.counts.countElsewhere({ type: 'auth', outcome: 'success', ip: '192.0.2.1', account: 'alice@ours.test' });
    const ips = primary.counts.records().auth.ips.map(([key]) => key);
    assert.deepEqual(ips, []);
    // The account's count is kept (a guesser elsewhere must not be reset by its owner).
    assert.equal(primary.counts.records().auth.accounts.length, 1);
  });

  test('bounded under a flood of distinct IPs and accounts: [auth.throttle] max_tracked each', () => {
    const clock = { now: Date.UTC(2024, 0, 1) };
    const primary = processCounts(clock, { max_tracked: 100 });
    for (let i = 0; i < 5000; i++) primary.counts.countElsewhere(failure(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, `guess${i}@ours.test`));
    const records = primary.counts.records();
    assert.equal(records.auth.ips.length, 100);
    assert.equal(records.auth.accounts.length, 100);
  });
});
