// Blocklist answers as the test DNS server gives them: listings, Spamhaus error codes, answers
// that are neither, failures, and IPv6 addresses in nibble form (RFC 5782 section 2.4).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { createDnsClient, type DnsClient } from '../dns/resolver.js';
import { dnsblFindings } from './dnsbl.js';

let server: TestDnsServer;
let dns: DnsClient;

before(async () => {
  server = await TestDnsServer.start();
  dns = createDnsClient({ servers: [server.address], timeoutMs: 500 });
});

after(() => server.close());

const statusOf = async (ip: string, zone: string): Promise<[string, string]> => {
  const [f] = await dnsblFindings([ip], [zone], dns);
  return [f?.status ?? '', f?.message ?? ''];
};

test('another list: a listing fails without Spamhaus meanings; 127.255.255.x from it is still no listing', async () => {
  server.set('2.2.0.192.bl.example.test', [{ type: 'A', address: '127.0.0.4' }]);
  assert.deepEqual(await statusOf('192.0.2.2', 'bl.example.test'), ['FAIL', '192.0.2.2 is listed in bl.example.test (127.0.0.4)']);
  server.set('3.2.0.192.bl.example.test', [{ type: 'A', address: '127.255.255.255' }]);
  const [status, message] = await statusOf('192.0.2.3', 'bl.example.test');
  assert.equal(status, 'UNKNOWN');
  assert.match(message, /an error, not a listing/);
});

test('an answer outside 127.0.0.0/24, and no answer at all, are UNKNOWN', async () => {
  server.set('4.2.0.192.bl.example.test', [{ type: 'A', address: '10.0.0.1' }]);
  assert.deepEqual(await statusOf('192.0.2.4', 'bl.example.test'), [
    'UNKNOWN',
    '192.0.2.4 in bl.example.test: unexpected answer 10.0.0.1, neither a listing nor "not listed"',
  ]);
  server.failWith('5.2.0.192.bl.example.test', 'servfail');
  const [status, message] = await statusOf('192.0.2.5', 'bl.example.test');
  assert.equal(status, 'UNKNOWN');
  assert.match(message, /^192\.0\.2\.5 in bl\.example\.test: no answer/);
});

test('IPv6 is asked in nibble form; NXDOMAIN is "not listed"', async () => {
  const nibbles = '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2';
  server.set(`${nibbles}.zen.spamhaus.org`, [{ type: 'A', address: '127.0.0.3' }]);
  const [status, message] = await statusOf('2001:db8::1', 'zen.spamhaus.org');
  assert.equal(status, 'FAIL');
  assert.match(message, /\(127\.0\.0\.3, SBL CSS/);
  assert.deepEqual(await statusOf('2001:db8::2', 'zen.spamhaus.org'), ['PASS', '2001:db8::2 is not listed in zen.spamhaus.org']);
});

test('with no address to look up, the check says how to give one', async () => {
  const [f] = await dnsblFindings([], ['zen.spamhaus.org'], dns);
  assert.equal(f?.status, 'UNKNOWN');
  assert.match(f?.message ?? '', /give --address/);
});
