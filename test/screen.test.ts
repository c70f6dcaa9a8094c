// The connect-time screen of the MX listener ([screen]), against the running server and the test
// DNS server: clients connect from their own loopback addresses (127.0.0.0/8 is all ours), which
// the lists below list, allowlist, answer with an error code, or never answer for. And the
// pregreet verdict: a client that talks before the greeting is refused and logged.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from './support/dns-server.js';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { SmtpClient } from './support/smtp-client.js';

const TIMEOUT_S = 0.5;

describe('[screen] DNS lists and the pregreet verdict', () => {
  let dns: TestDnsServer;
  let instance: PosternInstance;
  let server: PosternProcess;
  const clients: SmtpClient[] = [];

  async function connectFrom(localAddress: string, kind: 'mx' | 'submission' = 'mx'): Promise<SmtpClient> {
    const client = await SmtpClient.connect(server.port(kind), '127.0.0.1', localAddress);
    clients.push(client);
    return client;
  }

  const connectionLine = (ip: string) => server.waitForLog((e) => e.msg === 'connection' && e.client_ip === ip);

  before(async () => {
    dns = await TestDnsServer.start();
    instance = new PosternInstance({
      // Only 127.0.0.1 is trusted: the other loopback addresses stand for strangers.
      limits: { trusted_networks: ['127.0.0.1/32'], greeting_delay_ms: 200 },
      relay: { dns_servers: [dns.address] },
      screen: {
        dnsbl_sites: ['bl.test*3', 'wl.test=127.0.[0..255].[1..3]*-5', 'slow.test*3'],
        dnsbl_threshold: 3,
        dnsbl_timeout: TIMEOUT_S,
      },
    });
    server = await instance.start();
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await stopAndDispose(server, instance);
    await dns.close();
  });

  test('a listed client gets 554 5.7.1 naming the list, and the connection is logged as "dnsbl"', async () => {
    dns.set('10.0.0.127.bl.test', [{ type: 'A', address: '127.0.0.2' }]);
    const client = await connectFrom('127.0.0.10');
    const reply = await client.readReply();
    assert.equal(reply.code, 554, reply.text);
    assert.equal(reply.enhanced, '5.7.1');
    assert.match(reply.text, /client \[127\.0\.0\.10\] blocked using bl\.test/);
    await client.closed;
    assert.equal((await connectionLine('127.0.0.10')).outcome, 'dnsbl');
    const verdict = await server.waitForLog((e) => e.msg === 'dnsbl' && e.client_ip === '127.0.0.10');
    assert.equal(verdict.score, 3);
    assert.deepEqual(verdict.listed, ['bl.test*3: 127.0.0.2']);
  });

  test('the submission listener is not screened', async () => {
    const client = await connectFrom('127.0.0.10', 'submission');
    assert.equal((await client.readReply()).code, 220);
  });

  test('an allowlist answer inside its pattern offsets the listing; one outside it does not', async () => {
    dns.set('11.0.0.127.bl.test', [{ type: 'A', address: '127.0.0.2' }]);
    dns.set('11.0.0.127.wl.test', [{ type: 'A', address: '127.0.10.2' }]);
    const allowed = await connectFrom('127.0.0.11');
    assert.equal((await allowed.readReply()).code, 220);
    const line = await server.waitForLog((e) => e.msg === 'dnsbl' && e.client_ip === '127.0.0.11');
    assert.equal(line.score, -2);

    dns.set('12.0.0.127.bl.test', [{ type: 'A', address: '127.0.0.2' }]);
    dns.set('12.0.0.127.wl.test', [{ type: 'A', address: '127.0.10.9' }]);
    const refused = await connectFrom('127.0.0.12');
    assert.equal((await refused.readReply()).code, 554);
  });

  test('an answer in 127.255.255.0/24 is the list\'s error, not a listing: logged, and the client let in', async () => {
    dns.set('13.0.0.127.bl.test', [{ type: 'A', address: '127.255.255.254' }]);
    const client = await connectFrom('127.0.0.13');
    assert.equal((await client.readReply()).code, 220);
    const warning = await server.waitForLog((e) => e.msg === 'dnsbl list error, not a listing' && e.client_ip === '127.0.0.13');
    assert.equal(warning.level, 40);
    assert.equal(warning.score, 0);
    assert.match(String(warning.list_errors), /bl\.test: 127\.255\.255\.254: the query came through a public or open resolver/);
  });

  test('a list that never answers counts 0, and the greeting comes within the time budget', async () => {
    dns.failWith('14.0.0.127.slow.test', 'drop');
    const started = performance.now();
    const client = await connectFrom('127.0.0.14');
    assert.equal((await client.readReply()).code, 220);
    const elapsed = performance.now() - started;
    // Without the budget c-ares would wait out its own 5 s timeout, twice.
    assert.ok(elapsed >= TIMEOUT_S * 1000 - 50 && elapsed < 2_500, `greeting after ${Math.round(elapsed)} ms`);
    const line = await server.waitForLog((e) => e.msg === 'dnsbl' && e.client_ip === '127.0.0.14');
    assert.equal(line.score, 0);
    assert.equal(line.blocked, false);
    assert.match(String(line.unanswered), /slow\.test: no answer within 500 ms/);
  });

  test('a trusted client is never looked up', async () => {
    dns.set('1.0.0.127.bl.test', [{ type: 'A', address: '127.0.0.2' }]);
    const client = await connectFrom('127.0.0.1');
    assert.equal((await client.readReply()).code, 220);
    assert.equal(dns.requestCount('1.0.0.127.bl.test'), 0);
  });

  test('a client that talks before the greeting gets 554 5.5.1, logged as "pregreet"', async () => {
    const client = await connectFrom('127.0.0.15');
    client.send('EHLO hasty.remote.test\r\n');
    const reply = await client.readReply();
    assert.equal(reply.code, 554, reply.text);
    assert.equal(reply.enhanced, '5.5.1');
    assert.match(reply.text, /talked before the greeting/);
    await client.closed;
    assert.equal((await connectionLine('127.0.0.15')).outcome, 'pregreet');
  });
});
