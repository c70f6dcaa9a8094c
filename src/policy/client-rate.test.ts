import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { configSchema } from '../config/schema.js';
import { NetworkList } from '../util/network-list.js';
import { ClientRateLimits, clientRateRules, MINUTE_MS, RateTable, type ClientRateOptions, type ClientRateRules } from './client-rate.js';

// A window boundary of the epoch-aligned counter, so the tests can place events on either side.
const T0 = Date.UTC(2024, 0, 1);

function rules(overrides: Partial<ClientRateRules> = {}): ClientRateRules {
  return { connectionsPerMinute: 3, messagesPerMinute: 2, trusted: new NetworkList([]), ...overrides };
}

function setup(r: Partial<ClientRateRules> = {}, opts: ClientRateOptions = {}) {
  const clock = { now: T0 + 1000 };
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info', base: undefined }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const limits = new ClientRateLimits(rules(r), { logger, now: () => clock.now, ...opts });
  return { limits, clock, logs };
}

function connections(limits: ClientRateLimits, ip: string, n: number, protocol: 'smtp' | 'pop3' = 'smtp'): boolean[] {
  return Array.from({ length: n }, () => limits.admitConnection(ip, protocol, protocol === 'smtp' ? 'mx' : 'pop3'));
}

describe('ClientRateLimits: connections', () => {
  test('the N+1th connection within a minute is refused, and one line is logged for it', () => {
    const { limits, logs } = setup();
    assert.deepEqual(connections(limits, '192.0.2.1', 4), [true, true, true, false]);
    assert.deepEqual(logs.map((l) => [l.msg, l.client_ip, l.listener, l.count, l.limit]), [
      ['connection rate limit exceeded', '192.0.2.1', 'mx', 4, 3],
    ]);
    assert.equal(logs[0]?.level, 40); // warn, as Postfix's "warning: Connection rate limit exceeded"
    // Another client has its own count.
    assert.deepEqual(connections(limits, '192.0.2.2', 1), [true]);
  });

  test('a burst that straddles a window boundary is still counted whole', () => {
    const { limits, clock } = setup();
    clock.now = T0 + MINUTE_MS - 100;
    assert.deepEqual(connections(limits, '192.0.2.1', 3), [true, true, true]);
    clock.now = T0 + MINUTE_MS + 100;
    assert.deepEqual(connections(limits, '192.0.2.1', 1), [false]);
  });

  test('refused attempts count: a client that keeps trying stays refused until it pauses', () => {
    const { limits, clock } = setup();
    assert.deepEqual(connections(limits, '192.0.2.1', 3), [true, true, true]);
    for (let i = 0; i < 30; i++) {
      clock.now += 2_000; // one attempt every 2 s, over the limit of 3 a minute
      assert.equal(limits.admitConnection('192.0.2.1', 'smtp', 'mx'), false, `attempt ${i}`);
    }
    clock.now += 2 * MINUTE_MS;
    assert.deepEqual(connections(limits, '192.0.2.1', 3), [true, true, true]);
  });

  test('a client at the rate it is allowed is never refused', () => {
    const { limits, clock } = setup();
    for (let i = 0; i < 100; i++) {
      assert.equal(limits.admitConnection('192.0.2.1', 'smtp', 'mx'), true, `connection ${i}`);
      clock.now += MINUTE_MS / 2; // 2 a minute, under 3
    }
  });

  test('SMTP and POP3 are counted apart', () => {
    const { limits } = setup();
    assert.deepEqual(connections(limits, '192.0.2.1', 4, 'smtp'), [true, true, true, false]);
    assert.deepEqual(connections(limits, '192.0.2.1', 4, 'pop3'), [true, true, true, false]);
  });

  test('IPv6 clients share one count per /64; an IPv4-mapped client is its IPv4 address', () => {
    const { limits } = setup();
    assert.deepEqual(
      ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3', '2001:db8:1:2::4'].map((ip) => limits.admitConnection(ip, 'smtp', 'mx')),
      [true, true, true, false],
    );
    assert.equal(limits.admitConnection('2001:db8:1:3::1', 'smtp', 'mx'), true);
    assert.deepEqual(
      ['192.0.2.9', '::ffff:192.0.2.9', '192.0.2.9', '::ffff:c000:209'].map((ip) => limits.admitConnection(ip, 'smtp', 'mx')),
      [true, true, true, false],
    );
  });

  test('trusted networks are neither limited nor tracked', () => {
    const { limits } = setup({ trusted: new NetworkList(['192.0.2.0/24', '::1/128']) });
    assert.ok(connections(limits, '192.0.2.1', 50).every(Boolean));
    assert.ok(connections(limits, '::ffff:192.0.2.1', 50).every(Boolean));
    assert.ok(connections(limits, '::1', 50).every(Boolean));
    assert.deepEqual(limits.tracked, { smtp: 0, pop3: 0, messages: 0 });
    assert.deepEqual(connections(limits, '198.51.100.1', 4), [true, true, true, false]);
  });

  test('0 turns the limit off, and nothing is tracked', () => {
    const { limits } = setup({ connectionsPerMinute: 0 });
    assert.ok(connections(limits, '192.0.2.1', 1000).every(Boolean));
    assert.equal(limits.tracked.smtp, 0);
  });

  test('update() changes the limit and keeps the counts', () => {
    const { limits } = setup();
    assert.deepEqual(connections(limits, '192.0.2.1', 3), [true, true, true]);
    limits.update(rules({ connectionsPerMinute: 5 }));
    assert.deepEqual(connections(limits, '192.0.2.1', 3), [true, true, false]);
  });
});

describe('ClientRateLimits: messages', () => {
  test('the N+1th MAIL FROM within a minute gets 450 4.7.1, logged with the client', () => {
    const { limits, clock, logs } = setup();
    assert.equal(limits.checkMessage('192.0.2.1', 'mx'), undefined);
    assert.equal(limits.checkMessage('192.0.2.1', 'mx'), undefined);
    assert.deepEqual(limits.checkMessage('192.0.2.1', 'mx'), {
      code: 450,
      enhanced: '4.7.1',
      lines: ['Too much mail from 192.0.2.1, try again later'],
    });
    assert.deepEqual(logs.map((l) => [l.msg, l.client_ip, l.listener, l.count, l.limit]), [
      ['message rate limit exceeded', '192.0.2.1', 'mx', 3, 2],
    ]);
    // Messages and connections are separate counts.
    assert.deepEqual(connections(limits, '192.0.2.1', 3), [true, true, true]);
    clock.now += 2 * MINUTE_MS;
    assert.equal(limits.checkMessage('192.0.2.1', 'mx'), undefined);
  });

  test('trusted networks and a limit of 0 are never refused', () => {
    const trusted = setup({ trusted: new NetworkList(['192.0.2.0/24']) }).limits;
    const off = setup({ messagesPerMinute: 0 }).limits;
    for (let i = 0; i < 100; i++) {
      assert.equal(trusted.checkMessage('192.0.2.1', 'mx'), undefined);
      assert.equal(off.checkMessage('198.51.100.1', 'mx'), undefined);
    }
  });
});

describe('RateTable: memory', () => {
  test('a flood of distinct addresses never holds more than maxTracked entries', () => {
    const clock = { now: T0 };
    const table = new RateTable(100, () => clock.now);
    for (let i = 0; i < 10_000; i++) table.hit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    assert.equal(table.size, 100);
    // The most recent ones are the ones kept.
    assert.equal(table.hit('10.0.39.15'), 2); // i = 9999
  });

  test('clients idle for a whole window are dropped on the next event', () => {
    const clock = { now: T0 + 10 };
    const table = new RateTable(1000, () => clock.now);
    for (let i = 0; i < 50; i++) table.hit(`192.0.2.${i}`);
    assert.equal(table.size, 50);
    clock.now += MINUTE_MS; // the previous window still counts them
    table.hit('198.51.100.1');
    assert.equal(table.size, 51);
    clock.now += MINUTE_MS; // now they count 0
    table.hit('198.51.100.2');
    assert.deepEqual(table.size, 2);
  });
});

describe('clientRateRules', () => {
  test('defaults: 60 connections and 100 messages a minute, loopback trusted', () => {
    const r = clientRateRules(configSchema.parse({}));
    assert.equal(r.connectionsPerMinute, 60);
    assert.equal(r.messagesPerMinute, 100);
    assert.equal(r.trusted.contains('127.0.0.1'), true);
    assert.equal(r.trusted.contains('192.0.2.1'), false);
  });

  test('negative or fractional rates are config errors', () => {
    assert.throws(() => configSchema.parse({ limits: { client_connection_rate: -1 } }));
    assert.throws(() => configSchema.parse({ limits: { client_message_rate: 1.5 } }));
  });
});

describe('ClientRateLimits: messages counted in another worker process', () => {
  test('they count towards the limit here, are passed on by no one, and never refused or logged', () => {
    const told: string[] = [];
    const { limits, logs } = setup({}, { onMessage: (ip) => told.push(ip) });
    limits.messageElsewhere('192.0.2.1');
    limits.messageElsewhere('192.0.2.1');
    assert.equal(logs.length, 0);
    assert.deepEqual(told, []);
    // The limit is 2: the first message seen here is the third.
    assert.equal(limits.checkMessage('192.0.2.1', 'mx')?.code, 450);
    assert.deepEqual(told, ['192.0.2.1']);
  });

  test('trusted clients are not counted', () => {
    const { limits } = setup({ trusted: new NetworkList(['192.0.2.0/24']) });
    for (let i = 0; i < 5; i++) limits.messageElsewhere('192.0.2.1');
    assert.equal(limits.checkMessage('192.0.2.1', 'mx'), undefined);
  });
});

describe('ClientRateLimits: message counts handed to a worker process started again', () => {
  test('the counts carry over, and expire on the minute they would have', () => {
    const clock = { now: T0 + 1000 };
    const counted = new ClientRateLimits(rules(), { now: () => clock.now });
    const fresh = new ClientRateLimits(rules(), { now: () => clock.now });
    counted.messageElsewhere('192.0.2.1');
    counted.messageElsewhere('192.0.2.1');
    clock.now += 30_000;
    fresh.restoreMessages(counted.messageRecords());
    assert.equal(fresh.checkMessage('192.0.2.1', 'mx')?.code, 450);
    // Two minutes after the two: the window is over for the fresh table as for the first.
    clock.now = T0 + 1000 + 2 * MINUTE_MS;
    assert.equal(fresh.checkMessage('192.0.2.1', 'mx'), undefined);
  });

  test('clients idle for a full window are left out; the records are bounded by maxTracked', () => {
    const clock = { now: T0 };
    const counted = new ClientRateLimits(rules(), { now: () => clock.now, maxTracked: 50 });
    counted.messageElsewhere('192.0.2.1');
    clock.now += 2 * MINUTE_MS;
    assert.deepEqual(counted.messageRecords(), []);
    for (let i = 0; i < 500; i++) counted.messageElsewhere(`10.0.${i >> 8}.${i & 255}`);
    const records = counted.messageRecords();
    assert.equal(records.length, 50);
    assert.equal(records.at(-1)?.[0], '10.0.1.243');
  });
});
