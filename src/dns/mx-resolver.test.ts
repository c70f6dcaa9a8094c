import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { DnsError, createDnsClient, type DnsClient } from './resolver.js';
import { MxResolver, type NextHops } from './mx-resolver.js';

let server: TestDnsServer;
let dns: DnsClient;

before(async () => {
  server = await TestDnsServer.start();
  dns = createDnsClient({ servers: [server.address], timeoutMs: 1000 });
});
after(() => server.close());

function hostNames(hops: NextHops): string[] {
  assert.equal(hops.kind, 'hosts');
  return hops.kind === 'hosts' ? hops.hosts.map((h) => h.name) : [];
}

async function rejectsTempfail(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof DnsError && err.code === 'TEMPFAIL');
}

describe('MxResolver', () => {
  test('hosts in preference order, with IPv4 then IPv6 addresses', async () => {
    server.set('order.test', [
      { type: 'MX', preference: 20, exchange: 'backup.order.test' },
      { type: 'MX', preference: 10, exchange: 'Primary.Order.Test.' },
    ]);
    server.set('primary.order.test', [
      { type: 'AAAA', address: '::1' },
      { type: 'A', address: '127.0.0.10' },
    ]);
    server.set('backup.order.test', [{ type: 'AAAA', address: '::1' }]);
    const hops = await new MxResolver(dns).resolve('order.test');
    assert.deepEqual(hops, {
      kind: 'hosts',
      hosts: [
        { name: 'primary.order.test', addresses: ['127.0.0.10', '::1'], preference: 10 },
        { name: 'backup.order.test', addresses: ['::1'], preference: 20 },
      ],
    });
  });

  test('equal preferences come in random order; lower preferences always first', async () => {
    server.set('equal.test', [
      { type: 'MX', preference: 5, exchange: 'first.equal.test' },
      { type: 'MX', preference: 10, exchange: 'a.equal.test' },
      { type: 'MX', preference: 10, exchange: 'b.equal.test' },
      { type: 'MX', preference: 10, exchange: 'c.equal.test' },
    ]);
    for (const name of ['first', 'a', 'b', 'c']) server.set(`${name}.equal.test`, [{ type: 'A', address: '127.0.0.11' }]);
    const ordered = await new MxResolver(dns, { random: () => 0.999 }).resolve('equal.test');
    assert.equal(hostNames(ordered)[0], 'first.equal.test');
    // With Math.random, every one of the three equal hosts gets to go first sooner or later.
    const leaders = new Set<string>();
    const resolver = new MxResolver(dns);
    for (let i = 0; i < 60 && leaders.size < 3; i++) {
      const names = hostNames(await resolver.resolve('equal.test'));
      assert.equal(names[0], 'first.equal.test');
      leaders.add(names[1] as string);
    }
    assert.deepEqual([...leaders].sort(), ['a.equal.test', 'b.equal.test', 'c.equal.test']);
  });

  test('no MX records: the domain itself, preference 0 (implicit MX)', async () => {
    server.set('implicit.test', [
      { type: 'A', address: '127.0.0.12' },
      { type: 'AAAA', address: '::1' },
    ]);
    assert.deepEqual(await new MxResolver(dns).resolve('implicit.test'), {
      kind: 'hosts',
      hosts: [{ name: 'implicit.test', addresses: ['127.0.0.12', '::1'], preference: 0 }],
    });
  });

  test('null MX (RFC 7505)', async () => {
    server.set('nullmx.test', [
      { type: 'MX', preference: 0, exchange: '.' },
      { type: 'A', address: '127.0.0.13' },
    ]);
    assert.deepEqual(await new MxResolver(dns).resolve('nullmx.test'), { kind: 'null-mx' });
  });

  test('NXDOMAIN, or no MX and no address: no such domain', async () => {
    assert.deepEqual(await new MxResolver(dns).resolve('missing.test'), { kind: 'no-such-domain' });
    server.set('bare.test', [{ type: 'TXT', strings: ['nothing here'] }]);
    assert.deepEqual(await new MxResolver(dns).resolve('bare.test'), { kind: 'no-such-domain' });
    assert.deepEqual(await new MxResolver(dns).resolve('not a domain'), { kind: 'no-such-domain' });
  });

  test('an MX host without addresses is skipped; all of them without: no such domain', async () => {
    server.set('skip.test', [
      { type: 'MX', preference: 10, exchange: 'ghost.skip.test' },
      { type: 'MX', preference: 20, exchange: 'real.skip.test' },
    ]);
    server.set('real.skip.test', [{ type: 'A', address: '127.0.0.14' }]);
    assert.deepEqual(hostNames(await new MxResolver(dns).resolve('skip.test')), ['real.skip.test']);
    server.remove('real.skip.test');
    assert.deepEqual(await new MxResolver(dns).resolve('skip.test'), { kind: 'no-such-domain' });
  });

  test('temporary failures: of the MX lookup, of every host, of the implicit MX', async () => {
    server.set('temp.test', [
      { type: 'MX', preference: 10, exchange: 'a.temp.test' },
      { type: 'MX', preference: 20, exchange: 'b.temp.test' },
    ]);
    server.set('a.temp.test', [{ type: 'A', address: '127.0.0.15' }]);
    server.set('b.temp.test', [{ type: 'A', address: '127.0.0.16' }]);
    try {
      server.failWith('temp.test', 'servfail');
      await rejectsTempfail(new MxResolver(dns).resolve('temp.test'));
      server.failWith('temp.test', undefined);

      // One host failing is no reason to wait: the other is used.
      server.failWith('a.temp.test', 'servfail');
      assert.deepEqual(hostNames(await new MxResolver(dns).resolve('temp.test')), ['b.temp.test']);
      server.failWith('b.temp.test', 'drop');
      await rejectsTempfail(new MxResolver(dns).resolve('temp.test'));
      // A failed host beside one that does not exist: still temporary.
      server.remove('b.temp.test');
      await rejectsTempfail(new MxResolver(dns).resolve('temp.test'));
    } finally {
      server.failWith('temp.test', undefined);
      server.failWith('a.temp.test', undefined);
      server.failWith('b.temp.test', undefined);
    }

    // No MX, and the address lookups fail: the implicit MX is unknown, not absent.
    server.set('tempimplicit.test', [{ type: 'A', address: '127.0.0.23' }]);
    server.failWith('tempimplicit.test', 'refused', 'A');
    server.failWith('tempimplicit.test', 'refused', 'AAAA');
    await rejectsTempfail(new MxResolver(dns).resolve('tempimplicit.test'));
    server.failWith('tempimplicit.test', undefined, 'A');
    server.failWith('tempimplicit.test', undefined, 'AAAA');
  });

  test('IPv4 answering while IPv6 fails temporarily still yields the host', async () => {
    server.set('halfv6.test', [{ type: 'MX', preference: 1, exchange: 'mx.halfv6.test' }]);
    server.set('mx.halfv6.test', [
      { type: 'A', address: '127.0.0.17' },
      { type: 'AAAA', address: '::1' },
    ]);
    server.failWith('mx.halfv6.test', 'servfail', 'AAAA');
    try {
      assert.deepEqual(await new MxResolver(dns).resolve('halfv6.test'), {
        kind: 'hosts',
        hosts: [{ name: 'mx.halfv6.test', addresses: ['127.0.0.17'], preference: 1 }],
      });
    } finally {
      server.failWith('mx.halfv6.test', undefined, 'AAAA');
    }
  });

  test('IDN domains are looked up by their A-labels', async () => {
    server.set('xn--bcher-kva.test', [{ type: 'MX', preference: 10, exchange: 'mx.xn--bcher-kva.test' }]);
    server.set('mx.xn--bcher-kva.test', [{ type: 'A', address: '127.0.0.18' }]);
    assert.deepEqual(hostNames(await new MxResolver(dns).resolve('Bücher.test')), ['mx.xn--bcher-kva.test']);
    assert.equal(server.requestCount('xn--bcher-kva.test', 'MX'), 1);
  });

  test('an MX that is a CNAME is followed; an MX that is an IP address is used as given', async () => {
    server.set('cname.test', [
      { type: 'MX', preference: 10, exchange: 'alias.cname.test' },
      { type: 'MX', preference: 20, exchange: '127.0.0.20' },
    ]);
    server.set('alias.cname.test', [{ type: 'CNAME', target: 'real.cname.test' }]);
    server.set('real.cname.test', [{ type: 'A', address: '127.0.0.19' }]);
    assert.deepEqual(await new MxResolver(dns).resolve('cname.test'), {
      kind: 'hosts',
      hosts: [
        { name: 'alias.cname.test', addresses: ['127.0.0.19'], preference: 10 },
        { name: '127.0.0.20', addresses: ['127.0.0.20'], preference: 20 },
      ],
    });
  });

  test('address literals need no DNS', async () => {
    const resolver = new MxResolver(dns);
    assert.deepEqual(hostNames(await resolver.resolve('[127.0.0.21]')), ['127.0.0.21']);
    assert.deepEqual(hostNames(await resolver.resolve('[IPv6:::1]')), ['::1']);
    assert.deepEqual(await resolver.resolve('[::1]'), { kind: 'no-such-domain' });
  });

  test('at most maxHosts hosts are looked up; each host once', async () => {
    const records = Array.from({ length: 15 }, (_, i) => ({ type: 'MX' as const, preference: i, exchange: `h${i}.many.test` }));
    server.set('many.test', [...records, { type: 'MX', preference: 99, exchange: 'H0.many.test' }]);
    for (let i = 0; i < 15; i++) server.set(`h${i}.many.test`, [{ type: 'A', address: '127.0.0.22' }]);
    const names = hostNames(await new MxResolver(dns, { maxHosts: 10 }).resolve('many.test'));
    assert.deepEqual(names, Array.from({ length: 10 }, (_, i) => `h${i}.many.test`));
    assert.equal(server.requestCount('h12.many.test'), 0);
  });
});
