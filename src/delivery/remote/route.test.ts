import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestDnsServer } from '../../../test/support/dns-server.js';
import { configSchema } from '../../config/schema.js';
import { createDnsClient, type DnsClient } from '../../dns/resolver.js';
import { parseNextHop, Router } from './route.js';

let server: TestDnsServer;
let dns: DnsClient;

before(async () => {
  server = await TestDnsServer.start();
  dns = createDnsClient({ servers: [server.address], timeoutMs: 2000 });
  server.set('example.test', [{ type: 'MX', preference: 10, exchange: 'mx.example.test' }]);
  server.set('mx.example.test', [{ type: 'A', address: '127.0.0.5' }, { type: 'AAAA', address: '::1' }]);
  server.set('hub.test', [{ type: 'MX', preference: 5, exchange: 'mx.hub.test' }]);
  server.set('mx.hub.test', [{ type: 'A', address: '127.0.0.6' }]);
  server.set('relay.test', [{ type: 'A', address: '127.0.0.7' }]);
  // We are mx.postern.test (the hostname every Router here gets).
  server.set('mx.postern.test', [{ type: 'A', address: '127.0.0.8' }]);
  server.set('self.test', [{ type: 'MX', preference: 10, exchange: 'MX.Postern.Test' }, { type: 'MX', preference: 20, exchange: 'mx.hub.test' }]);
  server.set('backup.test', [
    { type: 'MX', preference: 5, exchange: 'mx.example.test' },
    { type: 'MX', preference: 10, exchange: 'mx.hub.test' },
    { type: 'MX', preference: 10, exchange: 'mx.postern.test' },
    { type: 'MX', preference: 20, exchange: 'relay.test' },
  ]);
});
after(() => server.close());

function router(relay: Record<string, unknown>): Router {
  return new Router(configSchema.parse({ relay }).relay, dns, 'mx.postern.test');
}

test('parseNextHop: brackets mean that host, no brackets its MX', () => {
  assert.deepEqual(parseNextHop('smtp:[10.0.0.1]:2525'), { host: '10.0.0.1', port: 2525, literal: true });
  assert.deepEqual(parseNextHop('smtp:[::1]:25'), { host: '::1', port: 25, literal: true });
  assert.deepEqual(parseNextHop('smtp:hub.test'), { host: 'hub.test', port: undefined, literal: false });
  assert.deepEqual(parseNextHop('relay.test:587'), { host: 'relay.test', port: 587, literal: false });
  assert.throws(() => parseNextHop('smtp:a b'));
});

describe('Router', () => {
  test('MX lookup on mx_port by default', async () => {
    assert.deepEqual(await router({ mx_port: 2526 }).route('Example.Test'), {
      kind: 'hosts',
      via: 'mx',
      destination: 'example.test',
      hosts: [{ name: 'mx.example.test', addresses: ['127.0.0.5', '::1'], port: 2526 }],
    });
  });

  test('a transport overrides the smart host; without brackets it looks up the MX of its host', async () => {
    const r = router({ smarthost: 'relay.test:587', transports: { 'example.test': 'smtp:hub.test:2527' } });
    const route = await r.route('example.test');
    assert.ok(route.kind === 'hosts');
    assert.equal(route.via, 'transport');
    assert.deepEqual(route.hosts, [{ name: 'mx.hub.test', addresses: ['127.0.0.6'], port: 2527 }]);
    const other = await r.route('other.test');
    assert.ok(other.kind === 'hosts');
    assert.equal(other.via, 'smarthost');
    assert.deepEqual(other.hosts, [{ name: 'relay.test', addresses: ['127.0.0.7'], port: 587 }]);
  });

  test('RFC 5321 5.1: our own MX and every one not more preferred than it are dropped', async () => {
    const route = await router({}).route('backup.test');
    assert.ok(route.kind === 'hosts');
    assert.deepEqual(
      route.hosts.map((h) => h.name),
      ['mx.example.test'],
    );
  });

  test('a domain whose best MX is ourselves bounces with 5.4.6 "loops back to myself"', async () => {
    assert.deepEqual(await router({}).route('self.test'), {
      kind: 'failed',
      status: '5.4.6',
      reason: 'mail for self.test loops back to myself',
    });
    const implicit = await router({}).route('mx.postern.test');
    assert.ok(implicit.kind === 'failed' && implicit.status === '5.4.6', 'our own name as an implicit MX too');
  });

  test('a smart host without a port: 25, or 465 for implicit TLS; one without an address defers', async () => {
    const plain = await router({ smarthost: '[127.0.0.9]' }).route('x.test');
    assert.ok(plain.kind === 'hosts' && plain.hosts[0]!.port === 25);
    const implicit = await router({ smarthost: '[127.0.0.9]', smarthost_tls: 'implicit' }).route('x.test');
    assert.ok(implicit.kind === 'hosts' && implicit.hosts[0]!.port === 465);
    const missing = await router({ smarthost: 'nowhere.test:25' }).route('x.test');
    assert.equal(missing.kind, 'deferred');
  });
});
