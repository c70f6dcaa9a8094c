import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { createDnsClient, DnsError, type DnsErrorCode } from './resolver.js';

let server: TestDnsServer;

before(async () => {
  server = await TestDnsServer.start();
  server.set('example.test', [
    { type: 'MX', preference: 10, exchange: 'mx.example.test' },
    { type: 'TXT', strings: ['v=STSv1; ', 'id=1'] },
  ]);
  server.set('mx.example.test', [
    { type: 'A', address: '127.0.0.2' },
    { type: 'AAAA', address: '::1' },
  ]);
});
after(() => server.close());

async function rejectsWithDnsError(promise: Promise<unknown>, code: DnsErrorCode, question: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DnsError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.question, question);
    assert.equal(err.permanent, code !== 'TEMPFAIL');
    return true;
  });
}

describe('createDnsClient', () => {
  test('MX, A, AAAA and TXT from the configured server', async () => {
    const dns = createDnsClient({ servers: [server.address] });
    assert.deepEqual(await dns.mx('example.test'), [{ exchange: 'mx.example.test', priority: 10 }]);
    assert.deepEqual(await dns.a('mx.example.test'), ['127.0.0.2']);
    assert.deepEqual(await dns.aaaa('mx.example.test'), ['::1']);
    assert.deepEqual(await dns.txt('example.test'), [['v=STSv1; ', 'id=1']]);
  });

  test('NXDOMAIN and NODATA are permanent answers', async () => {
    const dns = createDnsClient({ servers: [server.address] });
    await rejectsWithDnsError(dns.mx('nowhere.example.test'), 'NXDOMAIN', 'MX nowhere.example.test');
    await rejectsWithDnsError(dns.a('example.test'), 'NODATA', 'A example.test');
  });

  test('SERVFAIL, REFUSED, a timeout and a dead server are temporary', async () => {
    const dns = createDnsClient({ servers: [server.address], timeoutMs: 100 });
    server.set('broken.example.test', [{ type: 'A', address: '127.0.0.3' }]);
    try {
      for (const failure of ['servfail', 'refused', 'drop'] as const) {
        server.failWith('broken.example.test', failure);
        await rejectsWithDnsError(dns.a('broken.example.test'), 'TEMPFAIL', 'A broken.example.test');
      }
    } finally {
      server.failWith('broken.example.test', undefined);
    }
    const stopped = await TestDnsServer.start();
    const address = stopped.address;
    await stopped.close();
    const nobody = createDnsClient({ servers: [address], timeoutMs: 100 });
    await rejectsWithDnsError(nobody.mx('example.test'), 'TEMPFAIL', 'MX example.test');
  });

  test('an IPv6 server address in brackets is accepted', () => {
    assert.doesNotThrow(() => createDnsClient({ servers: ['[::1]:5353', '127.0.0.1'] }));
  });

  test('without a cache every lookup asks the server', async () => {
    const dns = createDnsClient({ servers: [server.address] });
    server.set('uncached.example.test', [{ type: 'A', address: '127.0.0.4' }]);
    await dns.a('uncached.example.test');
    server.set('uncached.example.test', [{ type: 'A', address: '127.0.0.5' }]);
    assert.deepEqual(await dns.a('uncached.example.test'), ['127.0.0.5']);
    assert.equal(server.requestCount('uncached.example.test', 'A'), 2);
  });

  test('with a cache: answers and NXDOMAIN are reused, bounded by the TTL; temporary failures are not', async () => {
    const dns = createDnsClient({ servers: [server.address], maxCacheSeconds: 300 });
    server.set('cached.example.test', [
      { type: 'A', address: '127.0.0.6', ttl: 300 },
      { type: 'MX', preference: 5, exchange: 'mx.example.test' },
    ]);
    await dns.a('cached.example.test');
    await Promise.all([dns.mx('CACHED.example.test'), dns.mx('cached.example.test')]);
    await dns.mx('cached.example.test');
    server.set('cached.example.test', [{ type: 'A', address: '127.0.0.7' }]);
    assert.deepEqual(await dns.a('cached.example.test'), ['127.0.0.6']);
    assert.equal(server.requestCount('cached.example.test', 'A'), 1);
    assert.equal(server.requestCount('cached.example.test', 'MX'), 1, 'concurrent and repeated questions share one');

    // A TTL of 0 means "do not cache" (RFC 1035 section 3.2.1).
    server.set('zero.example.test', [{ type: 'AAAA', address: '::1', ttl: 0 }]);
    await dns.aaaa('zero.example.test');
    await dns.aaaa('zero.example.test');
    assert.equal(server.requestCount('zero.example.test', 'AAAA'), 2);

    await rejectsWithDnsError(dns.a('gone.example.test'), 'NXDOMAIN', 'A gone.example.test');
    server.set('gone.example.test', [{ type: 'A', address: '127.0.0.8' }]);
    await rejectsWithDnsError(dns.a('gone.example.test'), 'NXDOMAIN', 'A gone.example.test');
    assert.equal(server.requestCount('gone.example.test'), 1);

    server.set('shaky.example.test', [{ type: 'A', address: '127.0.0.9' }]);
    server.failWith('shaky.example.test', 'servfail');
    await rejectsWithDnsError(dns.a('shaky.example.test'), 'TEMPFAIL', 'A shaky.example.test');
    server.failWith('shaky.example.test', undefined);
    assert.deepEqual(await dns.a('shaky.example.test'), ['127.0.0.9']);
  });
});
