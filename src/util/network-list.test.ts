import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetworkList, parseNetwork } from './network-list.js';

describe('NetworkList', () => {
  test('matches addresses inside its networks, in any spelling', () => {
    const list = new NetworkList(['127.0.0.0/8', '::1/128', '192.0.2.0/24', '2001:db8::/32', '198.51.100.7']);
    for (const ip of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '192.0.2.200', '2001:db8:1::5', '198.51.100.7']) {
      assert.equal(list.contains(ip), true, ip);
    }
    for (const ip of ['128.0.0.1', '192.0.3.1', '2001:db9::1', '198.51.100.8', '::2', 'fe80::1%eth0', 'not an ip']) {
      assert.equal(list.contains(ip), false, ip);
    }
  });

  test('the answer kept for the last address asked never leaks to the next one', () => {
    const list = new NetworkList(['127.0.0.0/8']);
    const asked = ['127.0.0.1', '127.0.0.1', '192.0.2.1', '192.0.2.1', '127.0.0.2', 'not an ip', '127.0.0.1', '::1'];
    assert.deepEqual(asked.map((ip) => list.contains(ip)), [true, true, false, false, true, false, true, false]);
  });

  test('an empty list matches nothing', () => {
    assert.equal(new NetworkList([]).contains('127.0.0.1'), false);
  });

  test('refuses what is not an address or a network', () => {
    for (const bad of ['127.0.0.0/33', '::1/129', 'localhost', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0/8', '::1/-1', '']) {
      assert.equal(parseNetwork(bad), undefined, bad);
      assert.throws(() => new NetworkList([bad]), /is not an IP address or network/);
    }
    assert.deepEqual(parseNetwork('10.1.2.3'), { address: '10.1.2.3', prefix: 32, family: 'ipv4' });
    assert.deepEqual(parseNetwork('2001:db8::/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' });
  });
});
