import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { TestDnsServer } from './dns-server.js';

let server: TestDnsServer;
let resolver: Resolver;

before(async () => {
  server = await TestDnsServer.start();
  resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([server.address]);
});
after(() => server.close());

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, code);
    return true;
  });
}

describe('TestDnsServer', () => {
  test('serves A, AAAA, MX and multi-string TXT records', async () => {
    server.set('mail.example.test', [
      { type: 'A', address: '192.0.2.1' },
      { type: 'A', address: '192.0.2.2' },
      { type: 'AAAA', address: '2001:db8::1' },
      { type: 'AAAA', address: '::ffff:192.0.2.9' },
    ]);
    server.set('example.test', [
      { type: 'MX', preference: 10, exchange: 'mail.example.test' },
      { type: 'MX', preference: 20, exchange: 'backup.example.test' },
      { type: 'TXT', strings: ['v=spf1 ', '-all'] },
      { type: 'TXT', strings: ['second'] },
    ]);
    assert.deepEqual((await resolver.resolve4('mail.example.test')).sort(), ['192.0.2.1', '192.0.2.2']);
    assert.deepEqual((await resolver.resolve6('mail.example.test')).sort(), ['2001:db8::1', '::ffff:192.0.2.9']);
    // Node 24 adds type: 'MX' to each record; only the RFC 1035 fields are ours to check.
    const mx = (await resolver.resolveMx('example.test')).map(({ exchange, priority }) => ({ exchange, priority }));
    assert.deepEqual(mx.sort((a, b) => a.priority - b.priority), [
      { exchange: 'mail.example.test', priority: 10 },
      { exchange: 'backup.example.test', priority: 20 },
    ]);
    const txt = await resolver.resolveTxt('example.test');
    assert.deepEqual(txt.sort(), [['second'], ['v=spf1 ', '-all']]);
  });

  test('serves SRV records, the "not offered" target "." included (RFC 2782)', async () => {
    server.set('_submissions._tcp.example.test', [{ type: 'SRV', priority: 0, weight: 1, port: 465, target: 'mail.example.test' }]);
    server.set('_pop3._tcp.example.test', [{ type: 'SRV', priority: 0, weight: 0, port: 0, target: '.' }]);
    assert.deepEqual(
      (await resolver.resolveSrv('_submissions._tcp.example.test')).map(({ priority, weight, port, name }) => ({ priority, weight, port, name })),
      [{ priority: 0, weight: 1, port: 465, name: 'mail.example.test' }],
    );
    assert.deepEqual(
      (await resolver.resolveSrv('_pop3._tcp.example.test')).map(({ priority, weight, port, name }) => ({ priority, weight, port, name })),
      [{ priority: 0, weight: 0, port: 0, name: '' }],
    );
  });

  test('the record TTL reaches the client', async () => {
    server.set('ttl.example.test', [{ type: 'A', address: '192.0.2.7', ttl: 1234 }]);
    assert.deepEqual(await resolver.resolve4('ttl.example.test', { ttl: true }), [{ address: '192.0.2.7', ttl: 1234 }]);
  });

  test('a null MX (RFC 7505) comes back as preference 0 and an empty exchange', async () => {
    server.set('null.example.test', [{ type: 'MX', preference: 0, exchange: '.' }]);
    const mx = (await resolver.resolveMx('null.example.test')).map(({ exchange, priority }) => ({ exchange, priority }));
    assert.deepEqual(mx, [{ exchange: '', priority: 0 }]);
  });

  test('names are case-insensitive and a trailing dot does not matter', async () => {
    server.set('Case.Example.Test.', [{ type: 'A', address: '192.0.2.3' }]);
    assert.deepEqual(await resolver.resolve4('cAsE.example.TEST'), ['192.0.2.3']);
  });

  test('CNAMEs are followed inside the zone', async () => {
    server.set('alias.example.test', [{ type: 'CNAME', target: 'real.example.test' }]);
    server.set('real.example.test', [{ type: 'A', address: '192.0.2.4' }]);
    assert.deepEqual(await resolver.resolve4('alias.example.test'), ['192.0.2.4']);
    assert.deepEqual(await resolver.resolveCname('alias.example.test'), ['real.example.test']);
  });

  test('unknown name: NXDOMAIN; known name without that type: NODATA', async () => {
    server.set('nodata.example.test', [{ type: 'A', address: '192.0.2.5' }]);
    await rejectsWith(resolver.resolve4('missing.example.test'), 'ENOTFOUND');
    await rejectsWith(resolver.resolveMx('nodata.example.test'), 'ENODATA');
    server.set('empty.example.test', []);
    await rejectsWith(resolver.resolve4('empty.example.test'), 'ENODATA');
  });

  test('failures: SERVFAIL, REFUSED, and silence (timeout), switched at run time', async () => {
    server.set('flaky.example.test', [{ type: 'A', address: '192.0.2.6' }]);
    server.failWith('flaky.example.test', 'servfail');
    await rejectsWith(resolver.resolve4('flaky.example.test'), 'ESERVFAIL');
    server.failWith('flaky.example.test', 'refused');
    await rejectsWith(resolver.resolve4('flaky.example.test'), 'EREFUSED');
    server.failWith('flaky.example.test', 'drop');
    await rejectsWith(resolver.resolve4('flaky.example.test'), 'ETIMEOUT');
    server.failWith('flaky.example.test', undefined);
    assert.deepEqual(await resolver.resolve4('flaky.example.test'), ['192.0.2.6']);
    server.failWith('flaky.example.test', 'servfail', 'AAAA');
    await rejectsWith(resolver.resolve6('flaky.example.test'), 'ESERVFAIL');
    assert.deepEqual(await resolver.resolve4('flaky.example.test'), ['192.0.2.6']);
    server.failWith('flaky.example.test', undefined, 'AAAA');
    await rejectsWith(resolver.resolve6('flaky.example.test'), 'ENODATA');
  });

  test('records change while the server runs', async () => {
    server.set('moving.example.test', [{ type: 'A', address: '192.0.2.10' }]);
    assert.deepEqual(await resolver.resolve4('moving.example.test'), ['192.0.2.10']);
    server.set('moving.example.test', [{ type: 'A', address: '192.0.2.11' }]);
    assert.deepEqual(await resolver.resolve4('moving.example.test'), ['192.0.2.11']);
    server.remove('moving.example.test');
    await rejectsWith(resolver.resolve4('moving.example.test'), 'ENOTFOUND');
  });

  test('a large answer is truncated over UDP and complete over TCP', async () => {
    const strings = Array.from({ length: 12 }, (_, i) => String(i % 10).repeat(250));
    server.set('big.example.test', [{ type: 'TXT', strings }]);
    const before = server.questions.length;
    const txt = await resolver.resolveTxt('big.example.test');
    assert.deepEqual(txt, [strings]);
    const asked = server.questions.slice(before).map((q) => q.transport);
    assert.deepEqual(asked, ['udp', 'tcp']);
  });

  test('counts the questions per name and type', async () => {
    server.set('counted.example.test', [{ type: 'A', address: '192.0.2.12' }]);
    assert.equal(server.requestCount('counted.example.test'), 0);
    await resolver.resolve4('counted.example.test');
    await rejectsWith(resolver.resolve6('counted.example.test'), 'ENODATA');
    assert.equal(server.requestCount('counted.example.test'), 2);
    assert.equal(server.requestCount('Counted.Example.Test', 'AAAA'), 1);
  });
});
