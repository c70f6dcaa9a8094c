// Outbound relay through a smart host: all mail goes to one authenticating relay (a real Postfix
// that only takes mail after AUTH, and offers AUTH only after STARTTLS), never by MX lookup.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeCertificate, writeCertificate } from './support/test-certificate.js';
import { TestDnsServer } from './support/dns-server.js';
import { TestPostfix } from './support/postfix.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, relayInstance, submit } from './support/relay-world.js';

const ALICE = `alice@${LOCAL_DOMAIN}`;
const RELAY_USER = { username: 'postern-relay', password: 'relay password 1' };

describe('outbound relay through an authenticating Postfix smart host', { skip: TestPostfix.available() }, () => {
  let dns: TestDnsServer;
  let smarthost: TestPostfix;
  let certDir: string;
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    dns = await TestDnsServer.start();
    const certificate = await makeCertificate('smarthost.test');
    smarthost = await TestPostfix.start({
      hostname: 'smarthost.test',
      domains: ['far.test'],
      tls: certificate,
      users: [RELAY_USER],
    });
    dns.set('smarthost.test', [{ type: 'A', address: '127.0.0.1' }]);
    // The relay's certificate is verified against its name, with this file as the trust anchor.
    certDir = mkdtempSync(join(tmpdir(), 'postern-smarthost-ca-'));
    chmodSync(certDir, 0o755);
    const ca = writeCertificate(certDir, 'smarthost', certificate).cert;
    instance = await relayInstance({
      dns,
      users: [ALICE],
      relay: {
        smarthost: `smarthost.test:${smarthost.port}`,
        smarthost_username: RELAY_USER.username,
        smarthost_password: RELAY_USER.password,
        smarthost_tls: 'starttls',
        tls_ca_file: ca,
      },
    });
    server = await instance.start();
  });

  after(async () => {
    await server?.stop().catch(() => server.kill());
    await instance?.dispose();
    await smarthost?.stop();
    await dns?.close();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  test('mail goes to the smart host with AUTH over TLS, not to the MX', async () => {
    const m = marker('smarthost');
    await submit(server.port('submission'), { from: ALICE, to: ['bob@far.test'], marker: m });
    const received = await smarthost.waitForMessage(m);
    // Postfix writes "with ESMTPSA" for ESMTP + STARTTLS + AUTH (RFC 3848), and names the account.
    assert.match(received.text, /\(Authenticated sender: postern-relay\)/);
    assert.match(received.text, /with ESMTPSA id /);
    assert.match(received.text, /^Return-Path: <alice@postern\.test>$/m);
    assert.equal(dns.requestCount('far.test', 'MX'), 0, 'a smart host replaces the MX lookup');
  });
});
