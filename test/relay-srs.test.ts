// Forwarding with SRS, end to end: a message from origin.test reaches our MX for an alias that
// points to far.test, and leaves for far.test's MX, a real Postfix, with an SRS0 sender at our
// domain; a bounce to that address reaches the original sender (origin.test's MX, the same
// Postfix); forged and expired SRS addresses are refused at RCPT; mail our users submit keeps
// its sender.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from './support/dns-server.js';
import { TestPostfix } from './support/postfix.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, relayInstance, submit } from './support/relay-world.js';
import { SmtpClient } from './support/smtp-client.js';
import { SrsCodec } from '../src/srs/srs.js';
import { SRS_SECRET_FILE } from '../src/srs/srs-secret.js';

const ALIAS = `fwd@${LOCAL_DOMAIN}`;
const TARGET = 'bob@far.test';
const ORIGINAL = 'carol@origin.test';
const USER = `alice@${LOCAL_DOMAIN}`;
const DAY = 24 * 60 * 60 * 1000;

const skip = TestPostfix.available();

describe('forwarding with SRS, to and from a real Postfix', { skip }, () => {
  let dns: TestDnsServer;
  let postfix: TestPostfix;
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    dns = await TestDnsServer.start();
    postfix = await TestPostfix.start({ domains: ['far.test', 'origin.test'], hostname: 'mx.far.test' });
    for (const domain of ['far.test', 'origin.test']) dns.set(domain, [{ type: 'MX', preference: 10, exchange: 'mx.far.test' }]);
    dns.set('mx.far.test', [{ type: 'A', address: '127.0.0.1' }]);
    instance = await relayInstance({ dns, users: [USER], relay: { mx_port: postfix.port } });
    await instance.cliOk(['alias', 'add', ALIAS, TARGET]);
    server = await instance.start();
  });

  after(async () => {
    await server?.stop().catch(() => server.kill());
    await instance?.dispose();
    await postfix?.stop();
    await dns?.close();
  });

  /** One message on the MX port, unauthenticated, as another domain's server would send it. */
  async function sendToMx(sender: string, recipient: string, subject: string): Promise<void> {
    const c = await SmtpClient.open(server.port('mx'));
    try {
      await c.command(`MAIL FROM:<${sender}>`, 250);
      await c.command(`RCPT TO:<${recipient}>`, 250);
      await c.command('DATA', 354);
      c.send(`From: <${sender || 'mailer-daemon@far.test'}>\r\nTo: <${recipient}>\r\nSubject: ${subject}\r\n\r\nbody\r\n.\r\n`);
      await c.expect(250);
    } finally {
      await c.command('QUIT').catch(() => undefined);
    }
  }

  async function rcptReply(recipient: string): Promise<string> {
    const c = await SmtpClient.open(server.port('mx'));
    try {
      await c.command('MAIL FROM:<>', 250);
      const r = await c.command(`RCPT TO:<${recipient}>`);
      return r.text;
    } finally {
      await c.command('QUIT').catch(() => undefined);
    }
  }

  let srsSender = '';

  test('a forwarded message arrives with an SRS0 sender at our domain', async () => {
    const m = marker('forwarded');
    await sendToMx(ORIGINAL, ALIAS, m);
    const received = await postfix.waitForMessage(m);
    assert.match(received.text, /^Delivered-To: bob@far\.test$/m);
    const returnPath = /^Return-Path: <([^>]*)>$/m.exec(received.text)?.[1] ?? '';
    assert.match(returnPath, new RegExp(`^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=origin\\.test=carol@${LOCAL_DOMAIN.replace('.', '\\.')}$`));
    srsSender = returnPath;
  });

  test('a bounce to the SRS address reaches the original sender', async () => {
    assert.ok(srsSender, 'needs the forwarded message');
    const m = marker('bounce');
    await sendToMx('', srsSender, m);
    const received = await postfix.waitForMessage(m);
    assert.match(received.text, /^Delivered-To: carol@origin\.test$/m);
    assert.match(received.text, /^Return-Path: <>$/m, 'a bounce keeps the null sender');
  });

  test('forged and expired SRS addresses are refused at RCPT with 550 5.1.1', async () => {
    assert.ok(srsSender, 'needs the forwarded message');
    const [, hash = ''] = srsSender.split('=');
    const forged = srsSender.replace(`=${hash}=`, `=${hash === 'AAAA' ? 'BBBB' : 'AAAA'}=`);
    assert.match(await rcptReply(forged), /^550 5\.1\.1 .*Invalid SRS address/);
    assert.match(await rcptReply(`SRS0=AAAA=AA=origin.test=carol@${LOCAL_DOMAIN}`), /^550 5\.1\.1/);
    // Made with the server's own secret, 22 days ago: the hash is right, the day is too old.
    const secret = Buffer.from(readFileSync(join(instance.dataDir, SRS_SECRET_FILE), 'utf8').trim(), 'base64');
    const old = new SrsCodec(secret, () => Date.now() - 22 * DAY).forward(ORIGINAL, LOCAL_DOMAIN);
    assert.match(await rcptReply(old), /^550 5\.1\.1 .*SRS address expired/);
    const recent = new SrsCodec(secret, () => Date.now() - 20 * DAY).forward(ORIGINAL, LOCAL_DOMAIN);
    assert.match(await rcptReply(recent), /^250 /);
  });

  test('mail our users submit is never rewritten, even through the alias', async () => {
    const m = marker('submitted');
    await submit(server.port('submission'), { from: USER, to: [ALIAS], marker: m });
    const received = await postfix.waitForMessage(m);
    assert.match(received.text, new RegExp(`^Return-Path: <${USER.replace('.', '\\.')}>$`, 'm'));
  });
});
