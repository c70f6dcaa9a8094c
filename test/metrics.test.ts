// The Prometheus metrics of a running server, scraped with curl from [listen] metrics: the
// exposition passes `promtool check metrics` (Debian's prometheus package), and the values move
// by exactly what the test did: one failed AUTH is one failure of its mechanism, one message is
// one accepted transaction and one local delivery, one garbled handshake one TLS failure, one
// connection over the per-IP cap one refusal, one connect-time DNS list lookup one DNS question.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { TestDnsServer } from './support/dns-server.js';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { parsePrometheusText, type Samples } from './support/prometheus-text.js';
import { SmtpClient } from './support/smtp-client.js';
import { eventually } from './support/test-server.js';

const USER = 'alice@metrics.test';
const PASSWORD = 'a password for the metrics test';
/** Not trusted (only 127.0.0.1 is), so the per-IP cap applies to it. */
const STRANGER = '127.0.0.30';

describe('Prometheus metrics on [listen] metrics', () => {
  let dns: TestDnsServer;
  let instance: PosternInstance;
  let server: PosternProcess;

  function scrapeText(): string {
    return execFileSync('curl', ['-sS', '--fail', `http://127.0.0.1:${server.port('metrics')}/metrics`], { encoding: 'utf8' });
  }
  const scrape = (): Samples => parsePrometheusText(scrapeText());

  before(async () => {
    dns = await TestDnsServer.start();
    instance = new PosternInstance({
      metrics: true,
      limits: { trusted_networks: ['127.0.0.1/32'], max_connections_per_ip: 1 },
      relay: { dns_servers: [dns.address] },
      // One list, so that each MX connection from a stranger asks exactly one question.
      screen: { dnsbl_sites: ['bl.metrics.test*3'] },
    });
    await instance.cliOk(['domain', 'add', 'metrics.test']);
    await instance.addUser(USER, PASSWORD);
    server = await instance.start();
  });

  after(async () => {
    await stopAndDispose(server, instance);
    await dns.close();
  });

  test('the exposition is valid for promtool and has every family', () => {
    const text = scrapeText();
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(lint.status, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
    for (const family of [
      'postern_connections_total',
      'postern_sessions_refused_total',
      'postern_transactions_total',
      'postern_smtp_replies_total',
      'postern_received_bytes_total',
      'postern_auth_attempts_total',
      'postern_delivery_attempts_total',
      'postern_delivery_latency_seconds',
      'postern_spool_batch_records',
      'postern_spool_fdatasync_seconds',
      'postern_dns_lookups_total',
      'postern_tls_handshake_failures_total',
      'postern_queue_messages',
      'postern_process_resident_memory_bytes',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${family} `, 'm'), family);
    }
  });

  test('one failed AUTH PLAIN counts one failure of PLAIN, and nothing else moves', async () => {
    const before = scrape();
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: server.port('submission'),
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: USER, pass: 'not the password', method: 'PLAIN' },
    });
    await assert.rejects(transport.verify(), /535|Invalid login/);
    transport.close();
    const now = scrape();
    assert.equal(now.delta(before, 'postern_auth_attempts_total', { mechanism: 'PLAIN', result: 'failure' }), 1);
    assert.equal(now.delta(before, 'postern_auth_attempts_total', { mechanism: 'PLAIN', result: 'success' }), 0);
    assert.equal(now.sumDelta(before, 'postern_auth_attempts_total'), 1);
    assert.equal(now.delta(before, 'postern_smtp_replies_total', { listener: 'submission', class: '5xx', enhanced: '5.7.8' }), 1);
  });

  test('one message on the MX: a transaction, its replies, its bytes, one DNS question, one local delivery', async () => {
    const before = scrape();
    const client = await SmtpClient.connect(server.port('mx'), '127.0.0.1', '127.0.0.31');
    await client.expect(220);
    await client.command('EHLO client.metrics.test', 250);
    await client.command(`MAIL FROM:<sender@elsewhere.test>`, 250);
    await client.command(`RCPT TO:<${USER}>`, 250);
    await client.command('DATA', 354);
    const body = 'Subject: counted\r\n\r\nOne message.\r\n.\r\n';
    client.send(body);
    await client.expect(250);
    await client.command('QUIT', 221);
    client.destroy();
    await instance.waitForMessage(USER, 'Subject: counted');
    const now = await eventually(() => {
      const s = scrape();
      return s.delta(before, 'postern_delivery_attempts_total', { destination: 'local', status: 'delivered' }) >= 1 ? s : undefined;
    }, 'the delivery in the metrics');
    assert.equal(now.delta(before, 'postern_delivery_attempts_total', { destination: 'local', status: 'delivered' }), 1);
    assert.equal(now.delta(before, 'postern_delivery_latency_seconds_count', { destination: 'local' }), 1);
    assert.equal(now.delta(before, 'postern_transactions_total', { listener: 'mx', result: 'accepted' }), 1);
    assert.equal(now.delta(before, 'postern_connections_total', { listener: 'mx' }), 1);
    // "250 2.0.0 queued as ..." after the data, and "221 2.0.0 Bye" after QUIT.
    assert.equal(now.delta(before, 'postern_smtp_replies_total', { listener: 'mx', class: '2xx', enhanced: '2.0.0' }), 2);
    assert.equal(now.delta(before, 'postern_smtp_replies_total', { listener: 'mx', class: '2xx', enhanced: '2.1.5' }), 1);
    assert.equal(now.delta(before, 'postern_smtp_replies_total', { listener: 'mx', class: '3xx', enhanced: '' }), 1);
    // Everything the client sent after the greeting, to the octet.
    const sent = ['EHLO client.metrics.test\r\n', 'MAIL FROM:<sender@elsewhere.test>\r\n', `RCPT TO:<${USER}>\r\n`, 'DATA\r\n', body, 'QUIT\r\n'];
    assert.equal(now.delta(before, 'postern_received_bytes_total', { listener: 'mx' }), Buffer.byteLength(sent.join('')));
    // The stranger's address was asked of the list once; the list does not know it.
    assert.equal(now.delta(before, 'postern_dns_lookups_total', { type: 'A', result: 'nxdomain' }), 1);
    assert.ok(now.delta(before, 'postern_spool_batch_records_count', {}) >= 1);
    assert.ok(now.delta(before, 'postern_spool_fdatasync_seconds_count', {}) >= 1);
    assert.equal(now.value('postern_queue_messages', { state: 'active' }), 0);
  });

  test('a client that speaks plain text to the implicit-TLS port is one TLS handshake failure', async () => {
    const before = scrape();
    const socket = net.connect({ host: '127.0.0.1', port: server.port('submissions') });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.end('EHLO not-tls.test\r\n');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const now = await eventually(() => {
      const s = scrape();
      return s.delta(before, 'postern_tls_handshake_failures_total', { listener: 'submissions' }) >= 1 ? s : undefined;
    }, 'the handshake failure in the metrics');
    assert.equal(now.delta(before, 'postern_tls_handshake_failures_total', { listener: 'submissions' }), 1);
  });

  test('a connection over the per-IP cap is one refusal "per-ip"', async () => {
    const before = scrape();
    const first = await SmtpClient.connect(server.port('mx'), '127.0.0.1', STRANGER);
    await first.expect(220);
    const second = await SmtpClient.connect(server.port('mx'), '127.0.0.1', STRANGER);
    const refused = await second.readReply();
    assert.equal(refused.code, 421);
    assert.equal(refused.enhanced, '4.7.0');
    first.destroy();
    second.destroy();
    const now = scrape();
    assert.equal(now.delta(before, 'postern_sessions_refused_total', { listener: 'mx', reason: 'per-ip' }), 1);
    assert.equal(now.delta(before, 'postern_connections_total', { listener: 'mx' }), 2);
  });

  test('other paths are 404 and other methods 405', () => {
    const port = server.port('metrics');
    const status = (args: string[]): string =>
      execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args], { encoding: 'utf8' });
    assert.equal(status([`http://127.0.0.1:${port}/`]), '404');
    assert.equal(status(['-X', 'POST', `http://127.0.0.1:${port}/metrics`]), '405');
  });
});
