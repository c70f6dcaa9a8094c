import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema } from '../config/schema.js';
import { AUTH_LOCKED_OUT, AuthThrottle, authThrottleOptions, throttleKey, type AuthThrottleOptions } from './auth-throttle.js';

const MINUTE = 60_000;

function setup(overrides: Partial<AuthThrottleOptions> = {}): { throttle: AuthThrottle; clock: { now: number } } {
  const clock = { now: Date.UTC(2024, 0, 1) };
  const defaults = authThrottleOptions(configSchema.parse({}).auth.throttle);
  const throttle = new AuthThrottle({ ...defaults, ...overrides, now: () => clock.now });
  return { throttle, clock };
}

describe('AuthThrottle', () => {
  test("failures another worker saw count towards this one's lockouts, and are not logged again", () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const { throttle } = setup({ ipMaxFailures: 3, accountMaxFailures: 100, logger });
    throttle.failureElsewhere('192.0.2.1', 'alice@ours.test');
    throttle.failureElsewhere('192.0.2.1', undefined);
    assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
    assert.equal(lines.length, 0);
    // The third failure, the first seen here, locks the IP: the counts are the server's.
    throttle.failure('192.0.2.1', 'alice@ours.test');
    assert.deepEqual(throttle.beforeAttempt('192.0.2.1'), AUTH_LOCKED_OUT);
    assert.equal(lines.length, 1);
  });

  test('update() applies new limits to the counts so far; a running lockout keeps its end', () => {
    const { throttle, clock } = setup({ ipMaxFailures: 10, ipLockoutMs: 10 * MINUTE, accountMaxFailures: 100 });
    throttle.failure('192.0.2.1', undefined);
    throttle.failure('192.0.2.1', undefined);
    for (let i = 0; i < 10; i++) throttle.failure('198.51.100.7', undefined);
    const base = authThrottleOptions(configSchema.parse({}).auth.throttle);
    throttle.update({ ...base, ipMaxFailures: 3, ipLockoutMs: MINUTE, accountMaxFailures: 100 });
    assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
    throttle.failure('192.0.2.1', undefined);
    assert.deepEqual(throttle.beforeAttempt('192.0.2.1'), AUTH_LOCKED_OUT);
    // Locked before the update for 10 minutes: still locked after the new lockout's minute.
    clock.now += 2 * MINUTE;
    assert.deepEqual(throttle.beforeAttempt('198.51.100.7'), AUTH_LOCKED_OUT);
    assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
  });

  test('update() with a smaller max_tracked forgets the least recently counted', () => {
    const { throttle } = setup({ ipMaxFailures: 2, accountMaxFailures: 100 });
    for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) throttle.failure(ip, undefined);
    const base = authThrottleOptions(configSchema.parse({}).auth.throttle);
    throttle.update({ ...base, ipMaxFailures: 2, accountMaxFailures: 100, maxTracked: 2 });
    assert.deepEqual(throttle.records().ips.map(([ip]) => ip), ['192.0.2.2', '192.0.2.3']);
  });

  test('an account is locked by failures seen elsewhere too', () => {
    const { throttle } = setup({ accountMaxFailures: 2 });
    throttle.failureElsewhere('192.0.2.1', 'alice@ours.test');
    assert.equal(throttle.isAccountLocked('alice@ours.test'), false);
    throttle.failureElsewhere('198.51.100.7', 'Alice@Ours.Test');
    assert.equal(throttle.isAccountLocked('alice@ours.test'), true);
  });

  test('the delay doubles with each failure, from 0.5 s up to the 8 s cap', () => {
    const { throttle } = setup({ ipMaxFailures: 100 });
    const delays = Array.from({ length: 7 }, () => throttle.failure('192.0.2.1', undefined));
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
  });

  test('an IP is locked out after 10 failures within 15 minutes, for 15 minutes', () => {
    const { throttle, clock } = setup();
    for (let i = 0; i < 9; i++) {
      assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
      throttle.failure('192.0.2.1', `user${i}@ours.test`);
      clock.now += MINUTE;
    }
    assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
    throttle.failure('192.0.2.1', 'user9@ours.test');
    assert.deepEqual(throttle.beforeAttempt('192.0.2.1'), AUTH_LOCKED_OUT);
    assert.deepEqual(AUTH_LOCKED_OUT, {
      code: 454,
      enhanced: '4.7.0',
      lines: ['Too many failed authentication attempts, try again later'],
    });
    // Other clients are not affected.
    assert.equal(throttle.beforeAttempt('192.0.2.2'), undefined);
    clock.now += 15 * MINUTE - 1;
    assert.notEqual(throttle.beforeAttempt('192.0.2.1'), undefined);
    clock.now += 1;
    assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
    // After the lockout the count starts afresh.
    assert.equal(throttle.failure('192.0.2.1', undefined), 500);
  });

  test('failures spread over more than the window never lock', () => {
    const { throttle, clock } = setup();
    for (let i = 0; i < 30; i++) {
      throttle.failure('192.0.2.1', undefined);
      clock.now += 2 * MINUTE; // a new window every 8 failures
    }
    assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
  });

  test('a success resets the IP count', () => {
    const { throttle } = setup();
    for (let i = 0; i < 9; i++) throttle.failure('192.0.2.1', 'alice@ours.test');
    throttle.success('192.0.2.1', 'alice@ours.test');
    assert.equal(throttle.failure('192.0.2.1', undefined), 500);
    for (let i = 0; i < 8; i++) throttle.failure('192.0.2.1', undefined);
    assert.equal(throttle.beforeAttempt('192.0.2.1'), undefined);
  });

  test('an account is locked after 20 failures from many IPs; the right password then fails too', () => {
    const { throttle, clock } = setup();
    for (let i = 0; i < 19; i++) throttle.failure(`198.51.100.${i}`, 'Alice@OURS.test');
    assert.equal(throttle.isAccountLocked('alice@ours.test'), false);
    throttle.failure('198.51.100.200', 'alice@ours.test');
    // This is what the AUTH command asks once the password was right: locked means "535".
    assert.equal(throttle.isAccountLocked('alice@ours.test'), true);
    assert.equal(throttle.isAccountLocked('bob@ours.test'), false);
    // Nothing tells the client: its IP may still try (and gets the same answer as a wrong password).
    assert.equal(throttle.beforeAttempt('203.0.113.9'), undefined);
    clock.now += 15 * MINUTE;
    assert.equal(throttle.isAccountLocked('alice@ours.test'), false);
  });

  test('IPv6 clients are counted per /64; IPv4-mapped addresses as IPv4', () => {
    assert.equal(throttleKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(throttleKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(throttleKey('::1'), '0:0:0:0::/64');
    assert.equal(throttleKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(throttleKey('::ffff:192.0.2.1'), '192.0.2.1');
    const { throttle } = setup();
    for (let i = 0; i < 10; i++) throttle.failure(`2001:db8:1:2::${i.toString(16)}`, undefined);
    assert.notEqual(throttle.beforeAttempt('2001:db8:1:2:ffff::9'), undefined);
    assert.equal(throttle.beforeAttempt('2001:db8:1:3::1'), undefined);
  });

  test('the tables are capped: the least recently seen IPs are forgotten', () => {
    const { throttle } = setup({ maxTracked: 100, ipMaxFailures: 1 });
    throttle.failure('10.0.0.1', 'a@ours.test');
    assert.notEqual(throttle.beforeAttempt('10.0.0.1'), undefined);
    for (let i = 0; i < 100; i++) throttle.failure(`10.1.${i >> 8}.${i & 255}`, `user${i}@ours.test`);
    assert.equal(throttle.beforeAttempt('10.0.0.1'), undefined);
    assert.notEqual(throttle.beforeAttempt('10.1.0.99'), undefined);
  });

  test('one "auth failed" line per failure, with the fields a fail2ban filter matches', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
        done();
      },
    });
    const logger = pino({ base: undefined }, sink);
    const { throttle } = setup({ logger, ipMaxFailures: 2 });
    throttle.failure('192.0.2.7', 'x","client_ip":"203.0.113.1', 'PLAIN');
    throttle.failure('192.0.2.7', undefined);
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0] as string);
    assert.equal(first.msg, 'auth failed');
    assert.equal(first.client_ip, '192.0.2.7');
    assert.equal(first.mechanism, 'PLAIN');
    assert.equal(first.delay_ms, 500);
    assert.equal(first.ip_locked, false);
    assert.equal(JSON.parse(lines[1] as string).ip_locked, true);
    // The documented failregex (with fail2ban's <HOST> as an IP group) finds the real client only.
    const failregex = /^\{.*"client_ip":"([0-9a-f.:]+)".*"msg":"auth failed"\}$/;
    assert.deepEqual(lines.map((l) => failregex.exec(l)?.[1]), ['192.0.2.7', '192.0.2.7']);
  });
});

describe('AuthThrottle: records handed to a worker process started again', () => {
  /** Two throttles on one clock: the one that counted, and a fresh one that takes its records. */
  function pair(overrides: Partial<AuthThrottleOptions> = {}) {
    const clock = { now: Date.UTC(2024, 0, 1) };
    const defaults = authThrottleOptions(configSchema.parse({}).auth.throttle);
    const make = (): AuthThrottle => new AuthThrottle({ ...defaults, ...overrides, now: () => clock.now });
    return { counted: make(), fresh: make(), clock };
  }

  test('a lockout carries over and ends when it would have, not a full lockout after the restore', () => {
    const { counted, fresh, clock } = pair({ ipMaxFailures: 3, ipLockoutMs: 15 * MINUTE });
    for (let i = 0; i < 3; i++) counted.failureElsewhere('192.0.2.1', undefined);
    clock.now += 10 * MINUTE;
    fresh.restore(counted.records());
    assert.deepEqual(fresh.beforeAttempt('192.0.2.1'), AUTH_LOCKED_OUT);
    clock.now += 5 * MINUTE;
    assert.equal(fresh.beforeAttempt('192.0.2.1'), undefined);
  });

  test('failures short of a lockout carry over: the next one locks', () => {
    const { counted, fresh } = pair({ ipMaxFailures: 3, accountMaxFailures: 3 });
    counted.failureElsewhere('192.0.2.1', 'alice@ours.test');
    counted.failureElsewhere('192.0.2.1', 'alice@ours.test');
    fresh.restore(counted.records());
    assert.equal(fresh.beforeAttempt('192.0.2.1'), undefined);
    assert.equal(fresh.isAccountLocked('alice@ours.test'), false);
    fresh.failure('192.0.2.1', 'Alice@Ours.Test');
    assert.deepEqual(fresh.beforeAttempt('192.0.2.1'), AUTH_LOCKED_OUT);
    assert.equal(fresh.isAccountLocked('alice@ours.test'), true);
  });

  test('records no longer in force are left out: a window or a lockout that is over', () => {
    const { counted, clock } = pair({ ipMaxFailures: 2, ipWindowMs: 15 * MINUTE, ipLockoutMs: 5 * MINUTE });
    counted.failureElsewhere('192.0.2.1', undefined);
    counted.failureElsewhere('192.0.2.2', undefined);
    counted.failureElsewhere('192.0.2.2', undefined); // locked until +5 min
    clock.now += 6 * MINUTE;
    counted.failureElsewhere('192.0.2.3', undefined);
    assert.deepEqual(counted.records().ips.map(([key]) => key), ['192.0.2.1', '192.0.2.3']);
    clock.now += 10 * MINUTE;
    assert.deepEqual(counted.records().ips.map(([key]) => key), ['192.0.2.3']);
    clock.now += 5 * MINUTE;
    assert.deepEqual(counted.records(), { ips: [], accounts: [] });
  });

  test('bounded: a flood of distinct IPs yields at most maxTracked records, and the newest are kept', () => {
    const { counted, clock } = pair({ maxTracked: 100 });
    for (let i = 0; i < 1000; i++) {
      counted.failureElsewhere(`10.0.${i >> 8}.${i & 255}`, `user${i}@ours.test`);
      clock.now += 1;
    }
    const records = counted.records();
    assert.equal(records.ips.length, 100);
    assert.equal(records.accounts.length, 100);
    // Least recently used first, so a table of the same cap keeps the same ones in the same order.
    assert.deepEqual(records.ips.at(-1)?.[0], '10.0.3.231');
    const smaller = new AuthThrottle({ ...authThrottleOptions(configSchema.parse({}).auth.throttle), maxTracked: 100, now: () => clock.now });
    smaller.restore(records);
    assert.deepEqual(smaller.records(), records);
  });

  test('the records are copies: counting on afterwards changes neither side', () => {
    const { counted, fresh } = pair({ ipMaxFailures: 3 });
    counted.failureElsewhere('192.0.2.1', undefined);
    const records = counted.records();
    fresh.restore(records);
    counted.failureElsewhere('192.0.2.1', undefined);
    fresh.failureElsewhere('192.0.2.1', undefined);
    assert.equal(records.ips[0]?.[1].failures, 1);
    assert.equal(counted.records().ips[0]?.[1].failures, 2);
    assert.equal(fresh.records().ips[0]?.[1].failures, 2);
  });
});
