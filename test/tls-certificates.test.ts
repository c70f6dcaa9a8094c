// End to end: the real server process with [[tls.certificates]]: SNI (RFC 6066 section 3) picks
// the certificate on both TLS listeners, and a certificate replaced on disk is served to the next
// connection without SIGHUP or restart, while a session already open carries on.

import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { stringify } from 'smol-toml';
import { makeCertificate, writeCertificate, type TestCertificate } from './support/test-certificate.js';
import { SmtpClient } from './support/smtp-client.js';
import { delay, PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';

describe('TLS certificates in the running server', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let certDir: string;
  let renewed: TestCertificate;

  before(async () => {
    const [alpha, beta, fresh] = await Promise.all([
      makeCertificate('alpha', ['mail.alpha.test']),
      makeCertificate('beta', ['mail.beta.test', '*.beta.test']),
      makeCertificate('alpha-renewed', ['mail.alpha.test']),
    ]);
    renewed = fresh;
    instance = new PosternInstance({ hostname: 'mx.postern.test' });
    certDir = join(instance.root, 'certs');
    mkdirSync(certDir, { mode: 0o755 });
    const certificates = [writeCertificate(certDir, 'alpha', alpha), writeCertificate(certDir, 'beta', beta)];
    appendFileSync(instance.configPath, `\n${stringify({ tls: { certificates } })}\n`);
    server = await instance.start();
  });

  after(() => stopAndDispose(server, instance));

  test('implicit TLS: SNI picks the certificate; no SNI gets the first one', async () => {
    const port = server.port('submissions');
    assert.equal(await implicitTlsCn(port, 'mail.beta.test'), 'beta');
    assert.equal(await implicitTlsCn(port, 'smtp.beta.test'), 'beta');
    assert.equal(await implicitTlsCn(port, 'mail.alpha.test'), 'alpha');
    assert.equal(await implicitTlsCn(port), 'alpha');
  });

  test('STARTTLS: SNI picks the certificate too', async () => {
    const client = await SmtpClient.connect(server.port('submission'));
    try {
      assert.match((await client.readReply()).raw, /^220 /);
      await client.command('EHLO client.example.test');
      assert.match((await client.command('STARTTLS')).raw, /^220 /);
      const secure = await client.startTls({ servername: 'mail.beta.test' });
      assert.equal(secure.getPeerCertificate().subject.CN, 'beta');
      secure.destroy();
    } finally {
      client.destroy();
    }
  });

  test('a certificate replaced on disk is served without SIGHUP; an open session carries on', async () => {
    const port = server.port('submissions');
    const open = await SmtpClient.connectTls(port);
    assert.match((await open.readReply()).raw, /^220 /);

    writeCertificate(certDir, 'alpha', renewed);
    const deadline = Date.now() + 15_000;
    while ((await implicitTlsCn(port, 'mail.alpha.test')) !== 'alpha-renewed') {
      if (Date.now() > deadline) assert.fail(`the renewed certificate was never served\n${server.log()}`);
      await delay(50);
    }
    assert.match((await open.command('EHLO client.example.test')).raw, /^250[- ]/);
    assert.match((await open.command('QUIT')).raw, /^221 /);
    open.destroy();
  });
});

async function implicitTlsCn(port: number, serverName?: string): Promise<string> {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect(
      { port, host: '127.0.0.1', rejectUnauthorized: false, ...(serverName ? { servername: serverName } : {}) },
      () => resolve(s),
    );
    s.once('error', reject);
  });
  const cn = String(socket.getPeerCertificate().subject.CN);
  socket.destroy();
  return cn;
}
