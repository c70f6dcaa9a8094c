// End to end: the real server process, driven by SMTP clients we did not write (swaks, Python's
// smtplib, nodemailer), delivering into a real Maildir. Each message carries a unique marker so
// the test finds exactly its own file, then checks the trace headers delivery must add
// (RFC 5321 4.4: Received and Return-Path) and that the body arrived byte for byte.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { requireTool, runTool } from './support/external-tool.js';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { headerValues, parseStoredMessage } from './support/stored-message.js';

const HOSTNAME = 'mx.postern.test';
const ALICE = 'alice@example.test';
const SENDER = 'x@remote.test';

/** Sends one message with smtplib; prints {"ok":true} or the refusal as JSON. */
const SMTPLIB_SCRIPT = `
import json, smtplib, sys
port, sender, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = sys.stdin.read()
try:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.remote.test", timeout=30) as s:
        s.sendmail(sender, [rcpt], msg)
    print(json.dumps({"ok": True}))
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients[rcpt]
    print(json.dumps({"ok": False, "code": code, "text": text.decode("utf-8", "replace")}))
except smtplib.SMTPResponseException as e:
    print(json.dumps({"ok": False, "code": e.smtp_code, "text": e.smtp_error.decode("utf-8", "replace")}))
`;

interface SmtplibResult {
  readonly ok: boolean;
  readonly code?: number;
  readonly text?: string;
}

async function sendWithSmtplib(port: number, rcpt: string, message: string): Promise<SmtplibResult> {
  requireTool('python3', 'python3');
  const run = await runTool('python3', ['-c', SMTPLIB_SCRIPT, String(port), SENDER, rcpt], message);
  assert.equal(run.code, 0, `python3 failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as SmtplibResult;
}

async function sendWithSwaks(port: number, rcpt: string, data: string): Promise<{ code: number | null; output: string }> {
  requireTool('swaks', 'swaks');
  const run = await runTool(
    'swaks',
    ['--server', '127.0.0.1', '--port', String(port), '--helo', 'client.remote.test', '--from', SENDER, '--to', rcpt, '--data', '-'],
    data,
  );
  return { code: run.code, output: run.stdout + run.stderr };
}

/** A message whose Subject is a fresh marker; `body` lines end in CRLF. */
function composeMessage(label: string, bodyLines: readonly string[]): { marker: string; data: string; body: string } {
  const marker = `${label}-${randomUUID()}`;
  return {
    marker,
    data: `From: <${SENDER}>\r\nTo: <${ALICE}>\r\nSubject: ${marker}\r\n\r\n${bodyLines.map((l) => `${l}\r\n`).join('')}`,
    body: bodyLines.map((l) => `${l}\n`).join(''),
  };
}

function assertDelivered(text: string, expected: { body: string; deliveredTo: readonly string[]; protocol?: RegExp }): void {
  const message = parseStoredMessage(text);
  assert.deepEqual(headerValues(message, 'Return-Path'), [`<${SENDER}>`], 'one Return-Path with the envelope sender');
  const deliveredTo = headerValues(message, 'Delivered-To');
  assert.equal(deliveredTo.length, 1, `one Delivered-To, got ${JSON.stringify(deliveredTo)}`);
  assert.ok(expected.deliveredTo.includes(deliveredTo[0]!), `Delivered-To: ${deliveredTo[0]}`);
  const received = headerValues(message, 'Received');
  assert.ok(received.length >= 1, 'a Received header');
  assert.match(received[0]!, new RegExp(`by ${HOSTNAME.replace(/\./g, '\\.')}`), 'our Received is the topmost');
  assert.match(received[0]!, /127\.0\.0\.1/, 'Received names the client address');
  if (expected.protocol) assert.match(received[0]!, expected.protocol);
  assert.equal(message.body, expected.body, 'body delivered unchanged');
}

describe('interop: third-party clients deliver over the MX port', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let port: number;

  before(async () => {
    instance = new PosternInstance({ hostname: HOSTNAME, postmaster: ALICE });
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE);
    await instance.cliOk(['alias', 'add', 'sales@example.test', ALICE]);
    server = await instance.start();
    port = server.port('mx');
  });

  after(() => stopAndDispose(server, instance));

  test('swaks', async () => {
    // swaks always ends DATA with CRLF . CRLF, so the data has no final line end of its own.
    const message = composeMessage('swaks', ['first line', 'second line']);
    const sent = await sendWithSwaks(port, ALICE, message.data.slice(0, -2));
    assert.equal(sent.code, 0, sent.output);
    const stored = await instance.waitForMessage(ALICE, message.marker);
    assertDelivered(stored.text, { body: message.body, deliveredTo: [ALICE] });
  });

  test("Python's smtplib, with dot-stuffed lines", async () => {
    const message = composeMessage('smtplib', ['first line', '.a line starting with a dot', '..two dots', 'last']);
    const result = await sendWithSmtplib(port, ALICE, message.data);
    assert.deepEqual(result, { ok: true });
    const stored = await instance.waitForMessage(ALICE, message.marker);
    assertDelivered(stored.text, { body: message.body, deliveredTo: [ALICE] });
  });

  test('nodemailer, plain text connection', async () => {
    const message = composeMessage('nodemailer-plain', ['hello from nodemailer', '.dot line']);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.remote.test' });
    const info = await transport.sendMail({ envelope: { from: SENDER, to: [ALICE] }, raw: message.data });
    transport.close();
    assert.deepEqual(info.accepted, [ALICE]);
    const stored = await instance.waitForMessage(ALICE, message.marker);
    assertDelivered(stored.text, { body: message.body, deliveredTo: [ALICE] });
  });

  test('nodemailer over STARTTLS (RFC 3207)', async () => {
    const message = composeMessage('nodemailer-tls', ['sent over TLS']);
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      requireTLS: true,
      name: 'client.remote.test',
      tls: { rejectUnauthorized: false },
    });
    const info = await transport.sendMail({ envelope: { from: SENDER, to: [ALICE] }, raw: message.data });
    transport.close();
    assert.deepEqual(info.accepted, [ALICE]);
    const stored = await instance.waitForMessage(ALICE, message.marker);
    // RFC 3848: ESMTPS says the hop was encrypted.
    assertDelivered(stored.text, { body: message.body, deliveredTo: [ALICE], protocol: /\bESMTPS\b/ });
  });

  test('an alias delivers to its target', async () => {
    const message = composeMessage('alias', ['for sales']);
    const result = await sendWithSmtplib(port, 'sales@example.test', message.data);
    assert.deepEqual(result, { ok: true });
    const stored = await instance.waitForMessage(ALICE, message.marker);
    assertDelivered(stored.text, { body: message.body, deliveredTo: [ALICE, 'sales@example.test'] });
  });

  test('a plus-address delivers to the user', async () => {
    const message = composeMessage('plus', ['tagged']);
    const sent = await sendWithSwaks(port, 'alice+tag@example.test', message.data.slice(0, -2));
    assert.equal(sent.code, 0, sent.output);
    const stored = await instance.waitForMessage(ALICE, message.marker);
    assertDelivered(stored.text, { body: message.body, deliveredTo: [ALICE, 'alice+tag@example.test'] });
  });

  test('postmaster@ a local domain is accepted (RFC 5321 4.5.1)', async () => {
    const message = composeMessage('postmaster', ['to the postmaster']);
    const result = await sendWithSmtplib(port, 'postmaster@example.test', message.data);
    assert.deepEqual(result, { ok: true });
    const stored = await instance.waitForMessage(ALICE, message.marker);
    assertDelivered(stored.text, { body: message.body, deliveredTo: [ALICE, 'postmaster@example.test'] });
  });

  test('an unknown user is refused with 550 5.1.1', async () => {
    const message = composeMessage('unknown', ['nobody reads this']);
    const swaks = await sendWithSwaks(port, 'nobody@example.test', message.data.slice(0, -2));
    assert.notEqual(swaks.code, 0);
    assert.match(swaks.output, /^<\*\* +550 5\.1\.1 /m, swaks.output);
    const smtplib = await sendWithSmtplib(port, 'nobody@example.test', message.data);
    assert.equal(smtplib.code, 550);
    assert.match(smtplib.text ?? '', /^5\.1\.1 /);
  });

  test('relaying to a remote domain is refused with 554 5.7.1', async () => {
    const message = composeMessage('relay', ['not an open relay']);
    const swaks = await sendWithSwaks(port, 'bob@remote.test', message.data.slice(0, -2));
    assert.notEqual(swaks.code, 0);
    assert.match(swaks.output, /^<\*\* +554 5\.7\.1 /m, swaks.output);
    const smtplib = await sendWithSmtplib(port, 'bob@remote.test', message.data);
    assert.equal(smtplib.code, 554);
    assert.match(smtplib.text ?? '', /^5\.7\.1 /);
    assert.ok(!instance.readMaildir(ALICE).some((m) => m.text.includes(message.marker)));
  });
});
