// SMTP AUTH end to end with startServer: real sockets on 127.0.0.1, real TLS, the real store,
// mechanisms, throttle, sender identity and rate limits. Tests may run as root: the server then
// switches the test process to "nobody", so each temp dir is mode 0755 and is the data_dir.

import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { pino } from 'pino';
import { computeUserSecrets } from '../auth/user-secrets.js';
import { stringify } from 'smol-toml';
import { loadConfig } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { ScramClient } from '../sasl/scram-client.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { startServer } from './server.js';
import { SmtpClient } from '../../test/support/smtp-client.js';
import { eventually, testServer, type TestServer } from '../../test/support/test-server.js';
import { awayFromHourBoundary } from '../util/hour-boundary.js';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const PASSWORD = 'correct horse battery staple';
const b64 = (text: string): string => Buffer.from(text).toString('base64');
const plain = (user: string, password: string): string => b64(`\0${user}\0${password}`);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo();
});

async function start(extra: Record<string, unknown> = {}, opts: { configFile?: boolean } = {}): Promise<TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-auth-'));
  fs.chmodSync(dir, 0o755);
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(path.join(dir, 'postern.db'));
  await store.addDomain('example.test');
  const secrets = await computeUserSecrets(PASSWORD, { cramMd5: false });
  await store.addUser(ALICE, secrets);
  await store.addUser(BOB, secrets);
  await store.close();
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const settings = configSettings(dir, extra);
  if (opts.configFile !== true) {
    const server = await startServer(configSchema.parse(settings), { logger });
    cleanups.push(() => server.stop());
    return testServer(server, dir, logs);
  }
  // The server reads this file again on reload(): rewrite it with configSettings(t.dir, ...).
  const configPath = path.join(dir, 'postern.toml');
  fs.writeFileSync(configPath, stringify(settings));
  const server = await startServer(loadConfig(configPath).config, { logger, configPath });
  cleanups.push(() => server.stop());
  return testServer(server, dir, logs);
}

function configSettings(dir: string, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    hostname: 'mx.example.test',
    data_dir: dir,
    user: '',
    listen: { mx: ['127.0.0.1:0'], submission: ['127.0.0.1:0'], submissions: ['127.0.0.1:0'], pop3: [], pop3s: [], http: [], https: [], metrics: [] },
    ...extra,
    auth: { throttle: { delay_ms: 0 }, ...(extra.auth as object | undefined) },
  };
}

/** Connected to the submission port, greeted and EHLO'd: plaintext still. */
async function plainSubmission(t: TestServer): Promise<SmtpClient> {
  const c = await SmtpClient.connect(t.port('submission'));
  cleanups.push(() => c.destroy());
  assert.match((await c.readReply()).raw, /^220 /);
  assert.match((await c.command('EHLO client.example')).raw, /^250-/);
  return c;
}

/** Submission after STARTTLS and a second EHLO; returns that EHLO reply too. */
async function tlsSubmission(t: TestServer): Promise<{ c: SmtpClient; ehlo: string; secure: tls.TLSSocket }> {
  const c = await plainSubmission(t);
  assert.match((await c.command('STARTTLS')).raw, /^220 2\.0\.0 /);
  const secure = await c.startTls();
  const ehlo = (await c.command('EHLO client.example')).raw;
  return { c, ehlo, secure };
}

async function loggedIn(t: TestServer, user = ALICE): Promise<SmtpClient> {
  const { c } = await tlsSubmission(t);
  assert.equal((await c.command(`AUTH PLAIN ${plain(user, PASSWORD)}`)).raw, '235 2.7.0 Authentication successful\r\n');
  return c;
}

/** MAIL, RCPT, DATA and the message; returns the final reply. */
async function send(c: SmtpClient, from: string, to: string, message: string): Promise<string> {
  const mail = (await c.command(`MAIL FROM:<${from}>`)).raw;
  if (!mail.startsWith('250')) return mail;
  const rcpt = (await c.command(`RCPT TO:<${to}>`)).raw;
  if (!rcpt.startsWith('250')) return rcpt;
  assert.match((await c.command('DATA')).raw, /^354 /);
  return (await c.command(`${message}\r\n.`)).raw;
}

describe('AUTH on the submission port', () => {
  test('before TLS: no AUTH offered, AUTH is 530, MAIL is 530', async () => {
    const t = await start();
    const c = await SmtpClient.connect(t.port('submission'));
    cleanups.push(() => c.destroy());
    await c.readReply();
    const ehlo = (await c.command('EHLO client.example')).raw;
    assert.doesNotMatch(ehlo, /AUTH/);
    assert.equal((await c.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw, '530 5.7.0 Must issue a STARTTLS command first\r\n');
    assert.equal((await c.command(`MAIL FROM:<${ALICE}>`)).raw, '530 5.7.0 Authentication required\r\n');
  });

  test('AUTH PLAIN over STARTTLS, then mail to a remote domain is accepted and queued, and logged with the account', async () => {
    const t = await start();
    const { c, ehlo } = await tlsSubmission(t);
    assert.match(ehlo, /^250 AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 PLAIN LOGIN\r$/m);
    assert.equal((await c.command(`MAIL FROM:<${ALICE}>`)).raw, '530 5.7.0 Authentication required\r\n');
    assert.equal((await c.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw, '235 2.7.0 Authentication successful\r\n');
    const reply = await send(c, ALICE, 'friend@remote.test', `From: Alice <${ALICE}>\r\nSubject: hi\r\n\r\nhello`);
    assert.match(reply, /^250 2\.0\.0 OK: queued as /);
    const line = await eventually(() => t.logs.find((l) => l.msg === 'message'), 'message line');
    assert.equal(line.auth_user, ALICE);
    assert.equal(line.client_ip, '127.0.0.1');
    assert.match(String(line.tls_version), /^TLSv1\.[23]$/);
    assert.equal(typeof line.tls_cipher, 'string');
    assert.deepEqual(line.recipients, ['friend@remote.test']);
  });

  test('relay: 554 on mx without AUTH, 250 on submission after AUTH', async () => {
    const t = await start();
    const mx = await SmtpClient.connect(t.port('mx'));
    cleanups.push(() => mx.destroy());
    await mx.readReply();
    await mx.command('EHLO client.example');
    assert.match((await mx.command('MAIL FROM:<someone@remote.test>')).raw, /^250 /);
    assert.match((await mx.command('RCPT TO:<friend@remote.test>')).raw, /^554 5\.7\.1 /);
    const c = await loggedIn(t);
    assert.match((await c.command(`MAIL FROM:<${ALICE}>`)).raw, /^250 /);
    assert.match((await c.command('RCPT TO:<friend@remote.test>')).raw, /^250 2\.1\.5 /);
  });

  test('implicit TLS (submissions) offers AUTH at once', async () => {
    const t = await start();
    const c = await SmtpClient.connectTls(t.port('submissions'));
    cleanups.push(() => c.destroy());
    await c.readReply();
    assert.match((await c.command('EHLO client.example')).raw, /^250 AUTH .*PLAIN/m);
    assert.equal((await c.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw, '235 2.7.0 Authentication successful\r\n');
  });

  test('SCRAM-SHA-256-PLUS with the tls-exporter binding of the real connection (TLS 1.3)', async () => {
    const t = await start();
    const { c, secure } = await tlsSubmission(t);
    assert.equal(secure.getProtocol(), 'TLSv1.3');
    const channelBinding = secure.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
    const client = new ScramClient({ hash: 'sha256', username: ALICE, password: PASSWORD, channelBinding });
    const first = (await c.command(`AUTH ${client.mechanism} ${b64(client.clientFirst())}`)).raw;
    const final = (await c.command(b64(client.clientFinal(Buffer.from(first.slice(4), 'base64').toString())))).raw;
    client.verifyServerFinal(Buffer.from(final.slice(4), 'base64').toString());
    assert.equal((await c.command('')).raw, '235 2.7.0 Authentication successful\r\n');
  });

  test('error paths: unknown user and wrong password alike, "*", bad base64, AUTH twice, unknown mechanism', async () => {
    const t = await start();
    const { c } = await tlsSubmission(t);
    const wrong = (await c.command(`AUTH PLAIN ${plain(ALICE, 'not the password')}`)).raw;
    const unknown = (await c.command(`AUTH PLAIN ${plain('nobody@example.test', PASSWORD)}`)).raw;
    assert.equal(wrong, '535 5.7.8 Authentication credentials invalid\r\n');
    assert.equal(unknown, wrong);
    assert.equal((await c.command('AUTH LOGIN')).raw, `334 ${b64('Username:')}\r\n`);
    assert.equal((await c.command('*')).raw, '501 5.0.0 Authentication cancelled\r\n');
    assert.equal((await c.command('AUTH PLAIN')).raw, '334 \r\n');
    assert.match((await c.command('%%%not-base64')).raw, /^501 5\.5\.2 /);
    assert.match((await c.command('AUTH PLAIN AGFsaWNl=')).raw, /^501 5\.5\.2 /);
    assert.match((await c.command('AUTH KERBEROS_V4')).raw, /^504 5\.5\.4 /);
    assert.match((await c.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw, /^235 /);
    assert.match((await c.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw, /^503 5\.5\.1 /);
    // The two failures were logged once each, in the fail2ban line.
    const failed = t.logs.filter((l) => l.msg === 'auth failed');
    assert.deepEqual(
      failed.map((l) => [l.client_ip, l.account]),
      [
        ['127.0.0.1', ALICE],
        ['127.0.0.1', 'nobody@example.test'],
      ],
    );
  });

  test('lockout: after N failures from an IP, AUTH gets 454 even with the right password', async () => {
    const t = await start({ limits: { max_errors: 50 }, auth: { throttle: { delay_ms: 0, ip_max_failures: 3 } } });
    const { c } = await tlsSubmission(t);
    for (let i = 0; i < 3; i++) assert.match((await c.command(`AUTH PLAIN ${plain(ALICE, `guess${i}`)}`)).raw, /^535 5\.7\.8 /);
    assert.equal(
      (await c.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw,
      '454 4.7.0 Too many failed authentication attempts, try again later\r\n',
    );
    // A new connection from the same IP is locked out too.
    const { c: again } = await tlsSubmission(t);
    assert.match((await again.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw, /^454 4\.7\.0 /);
  });

  test('STARTTLS injection: AUTH pipelined after STARTTLS, before the handshake, is discarded', async () => {
    const t = await start();
    const c = await plainSubmission(t);
    c.send(`STARTTLS\r\nAUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.match((await c.readReply()).raw, /^220 2\.0\.0 /);
    await c.startTls();
    assert.match((await c.command('EHLO client.example')).raw, /^250-/);
    assert.equal((await c.command(`MAIL FROM:<${ALICE}>`)).raw, '530 5.7.0 Authentication required\r\n');
    assert.equal(c.pending, '');
  });
});

describe('submission policy through the server', () => {
  test('MAIL FROM an address the account does not own: 553 5.7.1', async () => {
    const t = await start();
    const c = await loggedIn(t);
    assert.match((await c.command(`MAIL FROM:<${BOB}>`)).raw, /^553 5\.7\.1 /);
    assert.match((await c.command('MAIL FROM:<ceo@remote.test>')).raw, /^553 5\.7\.1 /);
  });

  test('a header From the account does not own: 553 5.7.1 after DATA', async () => {
    const t = await start();
    const c = await loggedIn(t);
    const reply = await send(c, ALICE, 'friend@remote.test', `From: Bob <${BOB}>\r\nSubject: forged\r\n\r\nhi`);
    assert.match(reply, /^553 5\.7\.1 /);
  });

  test('over the hourly limit: 450 4.7.1 at MAIL', async () => {
    await awayFromHourBoundary();
    const t = await start({ submission: { max_messages_per_hour: 1 } });
    const c = await loggedIn(t);
    assert.match(await send(c, ALICE, 'friend@remote.test', `From: ${ALICE}\r\n\r\none`), /^250 2\.0\.0 /);
    assert.match((await c.command(`MAIL FROM:<${ALICE}>`)).raw, /^450 4\.7\.1 .*1 messages per hour/);
  });

  test('a reload applies new [auth.throttle] and [submission] limits and keeps the counts', async () => {
    await awayFromHourBoundary();
    const before = { submission: { max_messages_per_hour: 0 }, auth: { throttle: { delay_ms: 0, account_max_failures: 10 } } };
    const t = await start(before, { configFile: true });
    const bob = await loggedIn(t, BOB);
    assert.match(await send(bob, BOB, 'friend@remote.test', `From: ${BOB}\r\n\r\none`), /^250 2\.0\.0 /);
    const { c } = await tlsSubmission(t);
    for (const guess of ['guess1', 'guess2']) assert.match((await c.command(`AUTH PLAIN ${plain(ALICE, guess)}`)).raw, /^535 5\.7\.8 /);

    const after = { submission: { max_messages_per_hour: 1 }, auth: { throttle: { delay_ms: 0, account_max_failures: 3 } } };
    fs.writeFileSync(path.join(t.dir, 'postern.toml'), stringify(configSettings(t.dir, after)));
    await t.server.reload();
    // The third failure reaches the new limit: the two before the reload still count.
    assert.match((await c.command(`AUTH PLAIN ${plain(ALICE, 'guess3')}`)).raw, /^535 5\.7\.8 /);
    const { c: again } = await tlsSubmission(t);
    assert.match((await again.command(`AUTH PLAIN ${plain(ALICE, PASSWORD)}`)).raw, /^535 5\.7\.8 /);
    // And Bob's message before the reload counts against the new hourly limit of 1.
    assert.match((await bob.command(`MAIL FROM:<${BOB}>`)).raw, /^450 4\.7\.1 .*1 messages per hour/);
  });

  test('received_auth = true names the account in the Received header', async () => {
    const t = await start({ submission: { received_auth: true } });
    const c = await loggedIn(t);
    assert.match(await send(c, ALICE, BOB, `From: ${ALICE}\r\nSubject: signed\r\n\r\nhi`), /^250 2\.0\.0 /);
    const newDir = path.join(t.dir, 'mail', 'example.test', 'bob', 'new');
    const file = await eventually(() => (fs.existsSync(newDir) ? fs.readdirSync(newDir)[0] : undefined), 'a Maildir file');
    const text = fs.readFileSync(path.join(newDir, file), 'utf8');
    assert.match(text, /^Received: from client\.example .*with ESMTPSA id /ms);
    assert.match(text, /\(authenticated as alice@example\.test\)/);
    assert.match(text, /\(using TLSv1\.3 with cipher /);
  });

  test('received_auth off (the default): the account stays out of the header', async () => {
    const t = await start();
    const c = await loggedIn(t);
    assert.match(await send(c, ALICE, BOB, `From: ${ALICE}\r\nSubject: quiet\r\n\r\nhi`), /^250 2\.0\.0 /);
    const newDir = path.join(t.dir, 'mail', 'example.test', 'bob', 'new');
    const file = await eventually(() => (fs.existsSync(newDir) ? fs.readdirSync(newDir)[0] : undefined), 'a Maildir file');
    const text = fs.readFileSync(path.join(newDir, file), 'utf8');
    assert.match(text, /with ESMTPSA/);
    assert.doesNotMatch(text, /authenticated as/);
  });
});
