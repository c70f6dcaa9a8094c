import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { createDnsClient, type DnsClient } from './resolver.js';
import { lookUpReverseDns, MAX_REVERSE_NAMES } from './reverse-dns.js';

let server: TestDnsServer;
let dns: DnsClient;

before(async () => {
  server = await TestDnsServer.start();
  dns = createDnsClient({ servers: [server.address], timeoutMs: 500 });
});
after(() => server.close());

describe('lookUpReverseDns (forward-confirmed reverse DNS)', () => {
  test('a PTR name whose A record holds the address is confirmed; names are lower case, without the dot', async () => {
    server.set('1.2.0.192.in-addr.arpa', [{ type: 'PTR', target: 'Mail.Example.Test.' }]);
    server.set('mail.example.test', [{ type: 'A', address: '192.0.2.1' }]);
    assert.deepEqual(await lookUpReverseDns(dns, '192.0.2.1'), { names: ['mail.example.test'], confirmed: ['mail.example.test'] });
  });

  test('IPv6: the AAAA records are asked, and addresses compared as addresses', async () => {
    const reverse = '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa';
    server.set(reverse, [{ type: 'PTR', target: 'v6.example.test' }]);
    server.set('v6.example.test', [{ type: 'AAAA', address: '2001:db8:0:0:0:0:0:1' }]);
    assert.deepEqual((await lookUpReverseDns(dns, '2001:db8::1')).confirmed, ['v6.example.test']);
  });

  test('a name that leads elsewhere is not confirmed, and that is an answer, not an error', async () => {
    server.set('2.2.0.192.in-addr.arpa', [{ type: 'PTR', target: 'liar.example.test' }]);
    server.set('liar.example.test', [{ type: 'A', address: '198.51.100.9' }]);
    assert.deepEqual(await lookUpReverseDns(dns, '192.0.2.2'), { names: ['liar.example.test'], confirmed: [] });
  });

  test('no PTR record is a permanent error; SERVFAIL is a temporary one', async () => {
    const none = await lookUpReverseDns(dns, '192.0.2.3');
    assert.deepEqual(none.names, []);
    assert.equal(none.error?.temporary, false);
    server.set('4.2.0.192.in-addr.arpa', [{ type: 'PTR', target: 'x.example.test' }]);
    server.failWith('4.2.0.192.in-addr.arpa', 'servfail');
    assert.equal((await lookUpReverseDns(dns, '192.0.2.4')).error?.temporary, true);
  });

  test('a forward lookup that fails temporarily leaves the question open, unless another name confirms', async () => {
    server.set('5.2.0.192.in-addr.arpa', [
      { type: 'PTR', target: 'down.example.test' },
      { type: 'PTR', target: 'up.example.test' },
    ]);
    server.set('down.example.test', [{ type: 'A', address: '192.0.2.5' }]);
    server.failWith('down.example.test', 'servfail');
    server.set('up.example.test', [{ type: 'A', address: '198.51.100.1' }]);
    const open = await lookUpReverseDns(dns, '192.0.2.5');
    assert.deepEqual(open.confirmed, []);
    assert.equal(open.error?.temporary, true);
    server.set('up.example.test', [{ type: 'A', address: '192.0.2.5' }]);
    const confirmed = await lookUpReverseDns(dns, '192.0.2.5');
    assert.deepEqual(confirmed.confirmed, ['up.example.test']);
    assert.equal(confirmed.error, undefined);
  });

  test(`at most ${MAX_REVERSE_NAMES} PTR names are followed`, async () => {
    const names = Array.from({ length: MAX_REVERSE_NAMES + 1 }, (_, i) => `n${String(i).padStart(2, '0')}.many.test`);
    server.set('6.2.0.192.in-addr.arpa', names.map((target) => ({ type: 'PTR' as const, target })));
    // Only the name past the limit resolves back.
    server.set(names[MAX_REVERSE_NAMES] ?? '', [{ type: 'A', address: '192.0.2.6' }]);
    const before = server.requestCount(undefined, 'A');
    const result = await lookUpReverseDns(dns, '192.0.2.6');
    assert.equal(result.names.length, MAX_REVERSE_NAMES);
    assert.equal(server.requestCount(undefined, 'A') - before, MAX_REVERSE_NAMES);
    assert.ok(!result.names.includes(names[MAX_REVERSE_NAMES] ?? ''));
    assert.deepEqual(result.confirmed, []);
  });

  test('a text that is no address has no reverse name', async () => {
    assert.equal((await lookUpReverseDns(dns, 'mail.example.test')).error?.temporary, false);
  });
});
