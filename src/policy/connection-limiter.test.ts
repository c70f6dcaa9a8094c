import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConnectionLimiter, clientKey } from './connection-limiter.js';
import { NetworkList } from '../util/network-list.js';

describe('ConnectionLimiter', () => {
  test('refuses the connection past the per-IP limit, and only for that IP', () => {
    const limiter = new ConnectionLimiter(2, 100);
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'per-ip');
    assert.equal(limiter.tryAcquire('192.0.2.2'), 'ok');
    assert.equal(limiter.total, 3);
  });

  test('refuses past the total limit whoever connects', () => {
    const limiter = new ConnectionLimiter(10, 2);
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
    assert.equal(limiter.tryAcquire('192.0.2.2'), 'ok');
    assert.equal(limiter.tryAcquire('192.0.2.3'), 'total');
    assert.equal(limiter.total, 2);
  });

  test('trusted networks are exempt from the per-IP cap, not from the total', () => {
    const limiter = new ConnectionLimiter(1, 4, new NetworkList(['127.0.0.0/8', '::1/128']));
    assert.equal(limiter.tryAcquire('127.0.0.1'), 'ok');
    assert.equal(limiter.tryAcquire('127.0.0.1'), 'ok');
    assert.equal(limiter.tryAcquire('::ffff:127.0.0.1'), 'ok', 'IPv4-mapped loopback');
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
    assert.equal(limiter.tryAcquire('0:0:0:0:0:0:0:1'), 'total');
    for (let i = 0; i < 3; i++) limiter.release('127.0.0.1');
    assert.equal(limiter.tryAcquire('::1'), 'ok');
    assert.equal(limiter.tryAcquire('::1'), 'ok');
    assert.equal(limiter.tryAcquire('::1'), 'ok');
    assert.equal(limiter.tryAcquire('192.0.2.9'), 'total');
    limiter.release('::1');
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'per-ip', 'an untrusted client keeps its cap');
  });

  test('a release frees a slot for the same IP', () => {
    const limiter = new ConnectionLimiter(1, 10);
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'per-ip');
    limiter.release('192.0.2.1');
    assert.equal(limiter.total, 0);
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
  });

  test('a refused connection is not counted', () => {
    const limiter = new ConnectionLimiter(1, 10);
    limiter.tryAcquire('192.0.2.1');
    limiter.tryAcquire('192.0.2.1');
    limiter.release('192.0.2.1');
    assert.equal(limiter.total, 0);
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
  });

  test('a release without an acquire never makes room beyond the limits', () => {
    const limiter = new ConnectionLimiter(1, 1);
    limiter.release('192.0.2.1');
    limiter.release('192.0.2.9');
    assert.equal(limiter.total, 0);
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'total');
  });

  test('an IPv4 client seen through an IPv6 socket shares its budget', () => {
    const limiter = new ConnectionLimiter(1, 10);
    assert.equal(limiter.tryAcquire('192.0.2.1'), 'ok');
    assert.equal(limiter.tryAcquire('::ffff:192.0.2.1'), 'per-ip');
    assert.equal(limiter.tryAcquire('::FFFF:192.0.2.1'), 'per-ip');
    assert.equal(limiter.tryAcquire('0:0:0:0:0:ffff:c000:201'), 'per-ip');
    limiter.release('::ffff:192.0.2.1');
    assert.equal(limiter.total, 0);
  });

  test('spellings of one IPv6 address share a budget', () => {
    const limiter = new ConnectionLimiter(1, 10);
    assert.equal(limiter.tryAcquire('::1'), 'ok');
    assert.equal(limiter.tryAcquire('0:0:0:0:0:0:0:1'), 'per-ip');
    assert.equal(limiter.tryAcquire('2001:DB8::1'), 'ok');
    assert.equal(limiter.tryAcquire('2001:db8:0::1'), 'per-ip');
  });

  test('clientKey', () => {
    assert.equal(clientKey('::ffff:1.2.3.4'), '1.2.3.4');
    assert.equal(clientKey('::ffff:102:304'), '1.2.3.4');
    assert.equal(clientKey('127.0.0.1'), '127.0.0.1');
    assert.equal(clientKey('2001:DB8:0:0::1'), '2001:db8::1');
    assert.equal(clientKey('fe80::1%eth0'), 'fe80::1%eth0');
  });

  test('property: the counts never exceed the limits and return to zero', () => {
    const ips = ['192.0.2.1', '::ffff:192.0.2.1', '192.0.2.2', '::1', '2001:db8::7'];
    const op = fc.record({ acquire: fc.boolean(), ip: fc.constantFrom(...ips) });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), fc.array(op), (perIp, max, ops) => {
        const limiter = new ConnectionLimiter(perIp, max);
        const held: string[] = [];
        for (const { acquire, ip } of ops) {
          if (acquire) {
            if (limiter.tryAcquire(ip) === 'ok') held.push(ip);
          } else {
            const i = held.indexOf(ip);
            if (i >= 0) {
              held.splice(i, 1);
              limiter.release(ip);
            }
          }
          assert.ok(limiter.total <= max);
          assert.equal(limiter.total, held.length);
          const perClient = new Map<string, number>();
          for (const h of held) perClient.set(clientKey(h), (perClient.get(clientKey(h)) ?? 0) + 1);
          for (const n of perClient.values()) assert.ok(n <= perIp);
        }
        for (const ip of held) limiter.release(ip);
        assert.equal(limiter.total, 0);
      }),
    );
  });
});
