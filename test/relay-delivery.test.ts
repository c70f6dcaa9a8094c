// Outbound relay end to end, with real peers: mail submitted with AUTH to the real Postern
// process goes out by MX lookup (the test DNS server on loopback) to a real Postfix, to a
// scripted sink that answers 4xx/5xx per recipient, or nowhere (null MX, MTA-STS); bounces and
// delay warnings come back to the sender's Maildir. All peers share one MX port on different
// loopback addresses, since [relay] mx_port is one number.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { makeCertificate, writeCertificate } from './support/test-certificate.js';
import { TestDnsServer } from './support/dns-server.js';
import { TestPostfix } from './support/postfix.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import {
  LOCAL_DOMAIN,
  marker,
  parseDkimRecordLine,
  relayInstance,
  submit,
  verifyDkim,
} from './support/relay-world.js';
import { SmtpSink } from './support/smtp-sink.js';
import { waitFor } from './support/wait-for.js';

const ALICE = `alice@${LOCAL_DOMAIN}`; // delivered, DKIM
const BRUNO = `bruno@${LOCAL_DOMAIN}`; // temporary failure, then success
const CLARA = `clara@${LOCAL_DOMAIN}`; // permanent failure
const DORA = `dora@${LOCAL_DOMAIN}`; // delay warning
const ERIK = `erik@${LOCAL_DOMAIN}`; // null MX
const FAYE = `faye@${LOCAL_DOMAIN}`; // MTA-STS

/** RCPT replies of the sink at flaky.test, changed while the test runs. */
const flakyReplies: Record<string, string> = {
  'busy@flaky.test': '450 4.2.1 Mailbox busy, try again later',
  'gone@flaky.test': '550 5.1.1 No such user here',
  'slow@flaky.test': '451 4.3.0 Temporary local problem',
};

const skip = TestPostfix.available();

describe('outbound relay by MX, with Postfix, a sink and the test DNS', { skip }, () => {
  let dns: TestDnsServer;
  let sink: SmtpSink;
  let postfix: TestPostfix;
  let stsPostfix: TestPostfix;
  let policyServer: HttpsServer;
  let instance: PosternInstance;
  let server: PosternProcess;
  let certDir: string | undefined;
  let dkimOutput = '';

  before(async () => {
    dns = await TestDnsServer.start();
    // The sink picks the port; the other peers take the same port on their own addresses.
    sink = await SmtpSink.start({ name: 'mx.flaky.test', recipients: flakyReplies }, '127.0.0.2');
    const mxPort = sink.port;
    postfix = await TestPostfix.start({ domains: ['far.test'], hostname: 'mx.far.test', port: mxPort });
    // MTA-STS: an MX whose certificate no one trusts, for a domain whose policy is "enforce".
    stsPostfix = await TestPostfix.start({
      domains: ['sts.test', 'plain.test'],
      hostname: 'mx.sts.test',
      host: '127.0.0.4',
      port: mxPort,
      tls: await makeCertificate('mx.sts.test'),
    });
    const policyCert = await makeCertificate('mta-sts.sts.test');
    // Readable after the server drops to "nobody" (mkdtemp makes 0700).
    certDir = mkdtempSync(join(tmpdir(), 'postern-sts-ca-'));
    chmodSync(certDir, 0o755);
    policyServer = await startPolicyServer(policyCert, 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n');

    dns.set('far.test', [{ type: 'MX', preference: 10, exchange: 'mx.far.test' }]);
    dns.set('mx.far.test', [{ type: 'A', address: '127.0.0.1' }]);
    dns.set('flaky.test', [{ type: 'MX', preference: 10, exchange: 'mx.flaky.test' }]);
    dns.set('mx.flaky.test', [{ type: 'A', address: '127.0.0.2' }]);
    // RFC 7505: "MX 0 ." says the domain accepts no mail at all.
    dns.set('nullmx.test', [{ type: 'MX', preference: 0, exchange: '.' }]);
    dns.set('sts.test', [{ type: 'MX', preference: 10, exchange: 'mx.sts.test' }]);
    dns.set('mx.sts.test', [{ type: 'A', address: '127.0.0.4' }]);
    // The control: the same MX for a domain without a policy, where opportunistic TLS goes on.
    dns.set('plain.test', [{ type: 'MX', preference: 10, exchange: 'mx.sts.test' }]);
    dns.set('_mta-sts.sts.test', [{ type: 'TXT', strings: ['v=STSv1; id=20240101T000000'] }]);
    dns.set('mta-sts.sts.test', [{ type: 'A', address: '127.0.0.1' }]);

    instance = await relayInstance({
      dns,
      users: [ALICE, BRUNO, CLARA, DORA, ERIK, FAYE],
      relay: { mx_port: mxPort, mta_sts: { https_port: addressOf(policyServer) } },
      // A delay warning after 2 s: dora's message stays deferred longer than that.
      queue: { delay_warning: '2s' },
      // The policy server's certificate is trusted the way an operator would add a CA.
      env: { NODE_EXTRA_CA_CERTS: writeCertificate(certDir, 'mta-sts', policyCert).cert },
    });
    dkimOutput = await instance.cliOk(['dkim', 'generate', LOCAL_DOMAIN, '--algorithm', 'ed25519']);
    const record = parseDkimRecordLine(dkimOutput);
    dns.set(record.name, [{ type: 'TXT', strings: record.strings }]);
    server = await instance.start();
  });

  after(async () => {
    await server?.stop().catch(() => server.kill());
    await instance?.dispose();
    await postfix?.stop();
    await stsPostfix?.stop();
    await sink?.close();
    if (policyServer) await new Promise((resolve) => policyServer.close(resolve));
    await dns?.close();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  test('delivered to Postfix as the MX, DKIM-signed, and the signature verifies there', async () => {
    const m = marker('delivered');
    await submit(server.port('submission'), { from: ALICE, to: ['bob@far.test'], marker: m });
    const received = await postfix.waitForMessage(m);
    assert.match(received.text, /^Delivered-To: bob@far\.test$/m);
    // Postfix recorded who handed it the message: Postern, by its hostname.
    assert.match(received.text, /Received: from mx\.postern\.test \(/);
    const [verdict, ...more] = await verifyDkim(received.text, dns);
    assert.equal(more.length, 0);
    assert.equal(verdict?.status.result, 'pass', verdict?.status.comment);
    assert.equal(verdict?.signingDomain, LOCAL_DOMAIN);
    assert.equal(verdict?.algo, 'ed25519-sha256');
  });

  test('postern dkim show prints the record that generate printed; generate keeps an existing key', async () => {
    assert.match(dkimOutput, /^postern\._domainkey\.postern\.test\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/=]+"$/m);
    assert.equal(await instance.cliOk(['dkim', 'show', LOCAL_DOMAIN]), dkimOutput.replace('generated', 'found'));
    const again = await instance.cli(['dkim', 'generate', LOCAL_DOMAIN]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already has a key with selector "postern"/);
    const foreign = await instance.cli(['dkim', 'generate', 'far.test']);
    assert.match(foreign.stderr, /not a local domain/);
  });

  test('a temporary failure is retried until the recipient accepts', async () => {
    const m = marker('retried');
    await submit(server.port('submission'), { from: BRUNO, to: ['busy@flaky.test'], marker: m });
    const first = await server.waitForLog((e) => e.msg === 'remote delivery attempt' && e.recipient === 'busy@flaky.test');
    assert.equal(first.status, 'deferred');
    assert.match(String(first.reply), /^450 4\.2\.1/);
    flakyReplies['busy@flaky.test'] = '250 2.1.5 Ok';
    const delivered = await waitFor(() => sink.messages.find((msg) => msg.data.toString('latin1').includes(m)));
    assert.deepEqual(delivered.recipients, ['busy@flaky.test']);
    assert.equal(delivered.sender, BRUNO);
    assert.equal(sink.messages.filter((msg) => msg.data.toString('latin1').includes(m)).length, 1);
    assert.deepEqual(instance.readMaildir(BRUNO), [], 'no bounce for a recipient that was delivered');
  });

  test('a permanent failure bounces to the sender\'s Maildir as a DSN', async () => {
    const m = marker('bounced');
    await submit(server.port('submission'), { from: CLARA, to: ['gone@flaky.test'], marker: m });
    const [dsn] = await instance.waitForMail(CLARA, 1);
    assert.ok(dsn);
    assertDsn(dsn.text, { action: 'failed', status: '5.1.1', recipient: 'gone@flaky.test' });
    assert.match(dsn.text, /550 5\.1\.1 No such user here/, 'the peer\'s own words are quoted');
    assert.ok(dsn.text.includes(m), 'the DSN carries the original message or its headers');
    assert.equal(sink.messages.some((msg) => msg.data.toString('latin1').includes(m)), false);
  });

  test('a message deferred longer than delay_warning brings the sender a delay DSN', async () => {
    const m = marker('delayed');
    await submit(server.port('submission'), { from: DORA, to: ['slow@flaky.test'], marker: m });
    const [dsn] = await instance.waitForMail(DORA, 1);
    assert.ok(dsn);
    assertDsn(dsn.text, { action: 'delayed', status: '4.3.0', recipient: 'slow@flaky.test' });
    assert.ok(dsn.text.includes(m));
  });

  test('a null MX bounces at once with 5.1.10, without any connection', async () => {
    const m = marker('null-mx');
    await submit(server.port('submission'), { from: ERIK, to: ['someone@nullmx.test'], marker: m });
    const [dsn] = await instance.waitForMail(ERIK, 1);
    assert.ok(dsn);
    assertDsn(dsn.text, { action: 'failed', status: '5.1.10', recipient: 'someone@nullmx.test' });
    // Other messages may still be retried against the sink meanwhile: look for this domain only.
    assert.ok(!sink.commands.some((c) => /nullmx\.test/i.test(c)), 'no RCPT for nullmx.test reached any server');
  });

  test('MTA-STS enforce: no delivery to an MX without a valid certificate', async () => {
    const m = marker('mta-sts');
    const control = marker('no-policy');
    await submit(server.port('submission'), { from: FAYE, to: ['carol@sts.test'], marker: m });
    await submit(server.port('submission'), { from: FAYE, to: ['carol@plain.test'], marker: control });
    // Same MX, same untrusted certificate: without a policy the message goes (RFC 3207
    // opportunistic TLS), so what stops the other one is the policy.
    await stsPostfix.waitForMessage(control);
    const attempt = await server.waitForLog((e) => e.msg === 'remote delivery attempt' && e.recipient === 'carol@sts.test');
    // Deferred, not bounced: RFC 8461 section 5 wants the message kept until the MX is fixed.
    assert.equal(attempt.status, 'deferred', JSON.stringify(attempt));
    assert.equal(stsPostfix.readMaildir().filter((msg) => msg.text.includes(m)).length, 0);
    assert.ok(dns.requestCount('mta-sts.sts.test') > 0, 'the policy host was looked up to fetch the policy');
  });
});

/** The fields of RFC 3464 section 2.3 that say what happened to one recipient. */
function assertDsn(text: string, expected: { action: string; status: string; recipient: string }): void {
  assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status;/i);
  assert.match(text, /Content-Type: message\/delivery-status/i);
  assert.match(text, new RegExp(`^Final-Recipient: rfc822; ?${escape(expected.recipient)}\\r?$`, 'mi'));
  assert.match(text, new RegExp(`^Action: ${expected.action}\\r?$`, 'mi'));
  assert.match(text, new RegExp(`^Status: ${escape(expected.status)}\\r?$`, 'mi'));
  // RFC 3834 section 2 / RFC 3464: a bounce is sent with the null reverse-path.
  assert.match(text, /^Return-Path: <>\r?$/m);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The HTTPS server of https://mta-sts.sts.test/.well-known/mta-sts.txt (RFC 8461 section 3.2). */
async function startPolicyServer(cert: { cert: string; key: string }, policy: string): Promise<HttpsServer> {
  const server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    if (req.url !== '/.well-known/mta-sts.txt') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(policy);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function addressOf(server: HttpsServer): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
