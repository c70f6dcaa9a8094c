// check_host() against records served by the test DNS server, through our DNS client: the
// mechanisms, the qualifiers, include and redirect, macros, and the limits.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { createDnsClient, type DnsClient } from '../dns/resolver.js';
import { checkHost } from './spf.js';

let server: TestDnsServer;
let dns: DnsClient;

before(async () => {
  server = await TestDnsServer.start();
  dns = createDnsClient({ servers: [server.address], timeoutMs: 1000 });
});

after(() => server.close());

const spf = (name: string, text: string): void => server.set(name, [{ type: 'TXT', strings: [text] }]);
const result = async (ip: string, domain: string): Promise<string> => (await checkHost(ip, domain, dns)).result;

describe('checkHost', () => {
  test('ip4 and ip6 networks, and the qualifier of the mechanism that matched', async () => {
    spf('nets.test', 'v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~ip4:198.51.100.7 -all');
    assert.equal(await result('192.0.2.200', 'nets.test'), 'pass');
    assert.equal(await result('2001:db8:1::25', 'nets.test'), 'pass');
    assert.equal(await result('198.51.100.7', 'nets.test'), 'softfail');
    assert.equal(await result('203.0.113.1', 'nets.test'), 'fail');
  });

  test('a and mx, with their own domain and a prefix length', async () => {
    server.set('hosts.test', [{ type: 'TXT', strings: ['v=spf1 a mx:other.test a:net.test/24 -all'] }, { type: 'A', address: '192.0.2.1' }]);
    server.set('other.test', [{ type: 'MX', preference: 10, exchange: 'mx.other.test' }]);
    server.set('mx.other.test', [{ type: 'A', address: '192.0.2.2' }, { type: 'AAAA', address: '2001:db8::2' }]);
    server.set('net.test', [{ type: 'A', address: '198.51.100.1' }]);
    assert.equal(await result('192.0.2.1', 'hosts.test'), 'pass');
    assert.equal(await result('192.0.2.2', 'hosts.test'), 'pass');
    assert.equal(await result('2001:db8::2', 'hosts.test'), 'pass');
    assert.equal(await result('198.51.100.99', 'hosts.test'), 'pass');
    assert.equal(await result('192.0.2.3', 'hosts.test'), 'fail');
  });

  test('include matches only on pass; redirect replaces the record; no match is neutral', async () => {
    spf('inc.test', 'v=spf1 include:provider.test -all');
    spf('provider.test', 'v=spf1 ip4:192.0.2.10 ~all');
    assert.equal(await result('192.0.2.10', 'inc.test'), 'pass');
    assert.equal(await result('192.0.2.11', 'inc.test'), 'fail', "the included softfail does not match; the outer -all does");
    spf('redir.test', 'v=spf1 redirect=provider.test');
    assert.equal(await result('192.0.2.11', 'redir.test'), 'softfail');
    spf('open.test', 'v=spf1 ip4:192.0.2.10');
    assert.equal(await result('192.0.2.11', 'open.test'), 'neutral');
  });

  test('errors: no record, two records, an include of nothing, too many lookups, a broken term', async () => {
    server.set('none.test', [{ type: 'TXT', strings: ['google-site-verification=abc'] }]);
    assert.equal(await result('192.0.2.1', 'none.test'), 'none');
    server.set('two.test', [{ type: 'TXT', strings: ['v=spf1 -all'] }, { type: 'TXT', strings: ['v=spf1 +all'] }]);
    assert.equal(await result('192.0.2.1', 'two.test'), 'permerror');
    spf('dangling.test', 'v=spf1 include:nowhere.test -all');
    assert.equal(await result('192.0.2.1', 'dangling.test'), 'permerror');
    spf('loop.test', 'v=spf1 include:loop.test -all');
    assert.equal(await result('192.0.2.1', 'loop.test'), 'permerror');
    spf('typo.test', 'v=spf1 ipv4:192.0.2.1 -all');
    assert.equal(await result('192.0.2.1', 'typo.test'), 'permerror');
  });

  test('macros and exists are evaluated; a DNS failure is a temperror', async () => {
    spf('macro.test', 'v=spf1 exists:%{i}.list.test -all');
    server.set('1.2.0.192.list.test', [{ type: 'A', address: '127.0.0.2' }]);
    assert.equal(await result('192.0.2.1', 'macro.test'), 'fail', '%{i} of an IPv4 address is its dotted form, which is not listed');
    server.set('192.0.2.1.list.test', [{ type: 'A', address: '127.0.0.2' }]);
    assert.equal(await result('192.0.2.1', 'macro.test'), 'pass');
    server.failWith('broken.test', 'servfail');
    assert.equal(await result('192.0.2.1', 'broken.test'), 'temperror');
  });
});
