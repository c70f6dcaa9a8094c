// End to end: SMTP AUTH (RFC 4954) with clients we did not write (nodemailer, Python's smtplib,
// swaks, curl) and our own SCRAM client, against the real server process, on submission with
// STARTTLS (RFC 3207) and on submissions with implicit TLS (RFC 8314). Every mechanism each client
// supports is forced in turn. Each message goes to a local recipient, whose Maildir must receive
// it, and to a remote one, which must be accepted and queued.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { stringify } from 'smol-toml';
import { SASL_MECHANISMS } from '../src/config/schema.js';
import { TestTokenIssuer } from './support/test-token-issuer.js';
import { ScramClient } from '../src/sasl/scram-client.js';
import { SmtpClient } from './support/smtp-client.js';
import { requireTool, runTool } from './support/external-tool.js';
import { delay, PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { headerValues, parseStoredMessage } from './support/stored-message.js';

const HOSTNAME = 'mx.postern.test';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const REMOTE = 'carol@remote.test';
const PASSWORD = 'correct horse battery staple';
/** Every mechanism Postern implements, CRAM-MD5 and the bearer tokens included. */
const ALL_MECHANISMS = [...SASL_MECHANISMS];

type Port = 'submission' | 'submissions';
const PORTS: readonly Port[] = ['submission', 'submissions'];
const PASSWORD_MECHANISMS = ['PLAIN', 'LOGIN', 'CRAM-MD5'] as const;

/** A message from alice to bob whose Subject is a fresh marker. */
function composeMessage(label: string): { marker: string; data: string } {
  const marker = `${label}-${randomUUID()}`;
  return { marker, data: `From: <${ALICE}>\r\nTo: <${BOB}>\r\nSubject: ${marker}\r\n\r\nhello from ${label}\r\n` };
}

describe('AUTH with real clients', () => {
  let issuer: TestTokenIssuer;
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    issuer = new TestTokenIssuer();
    instance = new PosternInstance({
      hostname: HOSTNAME,
      // remote.test goes to a closed loopback port: no DNS outside the test, and the attempt
      // fails (and is logged) at once.
      relay: { transports: { 'remote.test': 'smtp:[127.0.0.1]:9' }, mta_sts: { enabled: false } },
    });
    // CRAM-MD5 is enabled before the users are created: only then is its secret stored.
    appendFileSync(
      instance.configPath,
      `\n${stringify({
        auth: {
          cram_md5: true,
          mechanisms: ALL_MECHANISMS,
          oauth: issuer.oauthConfig(),
          // Short failure delays: the negative tests must not take seconds each.
          throttle: { delay_ms: 50, max_delay_ms: 200 },
        },
      })}\n`,
    );
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE, PASSWORD);
    await instance.addUser(BOB, PASSWORD);
    server = await instance.start();
  });

  after(async () => {
    try {
      await stopAndDispose(server, instance);
    } finally {
      issuer?.close();
    }
  });

  /** Waits for bob's copy and checks it came in over an authenticated, encrypted session. */
  async function assertDelivered(marker: string): Promise<void> {
    const stored = await instance.waitForMessage(BOB, marker);
    const received = headerValues(parseStoredMessage(stored.text), 'Received');
    // RFC 3848: ESMTPSA = ESMTP with STARTTLS or implicit TLS, and AUTH.
    assert.match(received[0] ?? '', /\bwith ESMTPSA\b/, `Received: ${received[0]}`);
  }

  describe('nodemailer', () => {
    for (const kind of PORTS) {
      for (const method of PASSWORD_MECHANISMS) {
        test(`${method} on ${kind}`, async () => {
          const message = composeMessage(`nodemailer-${method}-${kind}`);
          const info = await sendWithNodemailer(server.port(kind), kind, { user: ALICE, pass: PASSWORD, method }, message.marker);
          assert.deepEqual([...info.accepted].sort(), [BOB, REMOTE].sort());
          await assertDelivered(message.marker);
        });
      }
      test(`XOAUTH2 with a signed JWT on ${kind}`, async () => {
        const message = composeMessage(`nodemailer-XOAUTH2-${kind}`);
        const accessToken = issuer.sign(issuer.claimsFor(ALICE), { alg: kind === 'submission' ? 'RS256' : 'ES256' });
        const info = await sendWithNodemailer(server.port(kind), kind, { type: 'OAuth2', user: ALICE, accessToken }, message.marker);
        assert.deepEqual([...info.accepted].sort(), [BOB, REMOTE].sort());
        await assertDelivered(message.marker);
      });
    }

    test('the remote recipient is handed to the outbound relay', async () => {
      const deadline = Date.now() + 30_000;
      // The transport points at a closed port: the queue tried to relay it, and will retry.
      const queued = (): boolean =>
        server
          .log()
          .split('\n')
          .some((line) => line.includes('remote delivery attempt') && line.includes(REMOTE));
      while (!queued()) {
        if (Date.now() > deadline) assert.fail(`no "remote delivery attempt" line for ${REMOTE}\n${server.log()}`);
        await delay(50);
      }
    });

    test('a wrong password is refused with 535 5.7.8', async () => {
      const message = composeMessage('nodemailer-wrong');
      await assert.rejects(
        sendWithNodemailer(server.port('submission'), 'submission', { user: ALICE, pass: 'wrong', method: 'PLAIN' }, message.marker),
        (err: Error & { responseCode?: number; response?: string }) => {
          assert.equal(err.responseCode, 535);
          assert.match(err.response ?? '', /^535 5\.7\.8 /);
          return true;
        },
      );
    });
  });

  describe('Python smtplib', () => {
    for (const mechanism of PASSWORD_MECHANISMS) {
      test(`starttls() + ${mechanism}`, async () => {
        const message = composeMessage(`smtplib-${mechanism}`);
        const result = await sendWithSmtplib(server.port('submission'), mechanism, PASSWORD, message.data);
        assert.deepEqual(result, { ok: true, refused: [] });
        await assertDelivered(message.marker);
      });
    }

    test('starttls() + login(), the mechanism smtplib prefers', async () => {
      const message = composeMessage('smtplib-login');
      const result = await sendWithSmtplib(server.port('submission'), 'login()', PASSWORD, message.data);
      assert.deepEqual(result, { ok: true, refused: [] });
      await assertDelivered(message.marker);
    });

    test('a wrong password is refused with 535 5.7.8', async () => {
      const result = await sendWithSmtplib(server.port('submission'), 'PLAIN', 'wrong', composeMessage('x').data);
      assert.equal(result.ok, false);
      assert.equal(result.code, 535);
      assert.match(result.text ?? '', /^5\.7\.8 /);
    });

    test('AUTH before STARTTLS is refused with 530 5.7.0; no password in clear', async () => {
      const result = await sendWithSmtplib(server.port('submission'), 'PLAIN', PASSWORD, composeMessage('x').data, { starttls: false });
      assert.equal(result.ok, false);
      assert.equal(result.code, 530);
      assert.match(result.text ?? '', /^5\.7\.0 /);
    });
  });

  describe('swaks', () => {
    for (const kind of PORTS) {
      for (const mechanism of PASSWORD_MECHANISMS) {
        test(`--auth ${mechanism} ${kind === 'submission' ? '--tls' : '--tlsc'}`, async () => {
          const message = composeMessage(`swaks-${mechanism}-${kind}`);
          const run = await sendWithSwaks(server.port(kind), kind, mechanism, PASSWORD, message.marker);
          assert.equal(run.code, 0, run.output);
          assert.match(run.output, new RegExp(`^ ~> AUTH ${mechanism}\\b`, 'm'), 'swaks used the mechanism asked for');
          assert.match(run.output, /^<~ {2}235 2\.7\.0 /m);
          await assertDelivered(message.marker);
        });
      }
    }

    test('a wrong password is refused with 535 5.7.8', async () => {
      const run = await sendWithSwaks(server.port('submission'), 'submission', 'LOGIN', 'wrong', 'swaks-wrong');
      assert.notEqual(run.code, 0);
      assert.match(run.output, /^<~\* +535 5\.7\.8 /m, run.output);
    });
  });

  describe('curl', () => {
    const cases: { kind: Port; mechanism: string }[] = [
      { kind: 'submissions', mechanism: 'PLAIN' },
      { kind: 'submission', mechanism: 'PLAIN' },
      { kind: 'submission', mechanism: 'LOGIN' },
      { kind: 'submissions', mechanism: 'CRAM-MD5' },
    ];
    for (const { kind, mechanism } of cases) {
      test(`${kind === 'submissions' ? 'smtps://' : 'smtp:// --ssl-reqd'} AUTH=${mechanism}`, async () => {
        const message = composeMessage(`curl-${mechanism}-${kind}`);
        const run = await sendWithCurl(server.port(kind), kind, mechanism, ['--user', `${ALICE}:${PASSWORD}`], message.data);
        assert.equal(run.code, 0, run.output);
        assert.match(run.output, new RegExp(`^> AUTH ${mechanism}\\b`, 'm'), 'curl used the mechanism asked for');
        await assertDelivered(message.marker);
      });
    }

    // curl 7.88 picks OAUTHBEARER whenever the server offers it, whatever --login-options says;
    // XOAUTH2 is covered by nodemailer above.
    for (const mechanism of ['OAUTHBEARER']) {
      test(`smtps:// --oauth2-bearer AUTH=${mechanism}`, async () => {
        const message = composeMessage(`curl-${mechanism}`);
        const token = issuer.sign(issuer.claimsFor(ALICE), { alg: 'ES256' });
        const run = await sendWithCurl(
          server.port('submissions'),
          'submissions',
          mechanism,
          ['--user', `${ALICE}:`, '--oauth2-bearer', token],
          message.data,
        );
        assert.equal(run.code, 0, run.output);
        assert.match(run.output, new RegExp(`^> AUTH ${mechanism}\\b`, 'm'));
        await assertDelivered(message.marker);
      });
    }
  });

  describe('SCRAM (our client, RFC 5802 / 7677 / 9266)', () => {
    for (const kind of PORTS) {
      for (const hash of ['sha256', 'sha1'] as const) {
        for (const plus of [false, true]) {
          const name = `SCRAM-${hash === 'sha256' ? 'SHA-256' : 'SHA-1'}${plus ? '-PLUS' : ''}`;
          test(`${name} on ${kind}`, async () => {
            const client = await openTls(server.port(kind), kind);
            try {
              const ehlo = (await client.command('EHLO client.example.test')).raw;
              assert.match(ehlo, new RegExp(`^250[- ]AUTH .*\\b${name}\\b`, 'm'), ehlo);
              const secure = client.tlsSocket!;
              assert.equal(secure.getProtocol(), 'TLSv1.3', 'tls-exporter binding needs TLS 1.3 (RFC 9266)');
              const scram = new ScramClient({
                hash,
                username: ALICE,
                password: PASSWORD,
                ...(plus ? { channelBinding: secure.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)) } : {}),
              });
              assert.equal(scram.mechanism, name);
              assert.match(await scramLogin(client, scram), /^235 2\.7\.0 /);
              const message = composeMessage(`scram-${name}-${kind}`);
              await sendMail(client, [BOB, REMOTE], message.data);
              await client.command('QUIT');
              await assertDelivered(message.marker);
            } finally {
              client.destroy();
            }
          });
        }
      }
    }

    test('a wrong password fails with 535 5.7.8 at the client-final message', async () => {
      const client = await openTls(server.port('submissions'), 'submissions');
      try {
        await client.command('EHLO client.example.test');
        const scram = new ScramClient({ hash: 'sha256', username: ALICE, password: 'wrong' });
        assert.match(await scramLogin(client, scram), /^535 5\.7\.8 /);
      } finally {
        client.destroy();
      }
    });
  });

  describe('refusals before AUTH', () => {
    test('AUTH before STARTTLS on submission: 530 5.7.0, and AUTH is not advertised', async () => {
      const client = await SmtpClient.connect(server.port('submission'));
      try {
        assert.match((await client.readReply()).raw, /^220 /);
        const ehlo = (await client.command('EHLO client.example.test')).raw;
        assert.doesNotMatch(ehlo, /^250[- ]AUTH\b/m, ehlo);
        assert.match((await client.command(`AUTH PLAIN ${plainResponse(ALICE, PASSWORD)}`)).raw, /^530 5\.7\.0 /);
      } finally {
        client.destroy();
      }
    });

    test('MAIL without AUTH on submission: 530 5.7.0 (RFC 4954 section 6)', async () => {
      const client = await openTls(server.port('submissions'), 'submissions');
      try {
        await client.command('EHLO client.example.test');
        assert.match((await client.command(`MAIL FROM:<${ALICE}>`)).raw, /^530 5\.7\.0 /);
      } finally {
        client.destroy();
      }
    });
  });
});

describe('CRAM-MD5 is opt-in', () => {
  let instance: PosternInstance;
  let server: PosternProcess | undefined;

  before(async () => {
    instance = new PosternInstance({ hostname: HOSTNAME });
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE, PASSWORD);
    await instance.addUser(BOB, PASSWORD);
  });

  after(() => stopAndDispose(server, instance));

  test('by default it is neither offered nor accepted', async () => {
    server = await instance.start();
    const client = await openTls(server.port('submissions'), 'submissions');
    try {
      const ehlo = (await client.command('EHLO client.example.test')).raw;
      assert.match(ehlo, /^250[- ]AUTH .*\bPLAIN\b/m, ehlo);
      assert.doesNotMatch(ehlo, /CRAM-MD5/);
      assert.match((await client.command('AUTH CRAM-MD5')).raw, /^504 5\.5\.4 /);
    } finally {
      client.destroy();
    }
    const run = await sendWithSwaks(server.port('submission'), 'submission', 'CRAM-MD5', PASSWORD, 'swaks-no-cram');
    assert.notEqual(run.code, 0, run.output);
    assert.equal(await server.stop(), 0, server.log());
    server = undefined;
  });

  test('once enabled, only passwords set afterwards can use it', async () => {
    appendFileSync(instance.configPath, `\n${stringify({ auth: { cram_md5: true, mechanisms: ['PLAIN', 'CRAM-MD5'] } })}\n`);
    server = await instance.start();
    const before = await sendWithSwaks(server.port('submission'), 'submission', 'CRAM-MD5', PASSWORD, 'swaks-cram-old');
    assert.match(before.output, /^<~\* +535 5\.7\.8 /m, 'alice has no CRAM-MD5 secret yet');
    await instance.cliOk(['user', 'passwd', ALICE, '--password-stdin'], `${PASSWORD}\n`);
    const message = composeMessage('swaks-cram-new');
    const after = await sendWithSwaks(server.port('submission'), 'submission', 'CRAM-MD5', PASSWORD, message.marker);
    assert.equal(after.code, 0, after.output);
    await instance.waitForMessage(BOB, message.marker);
  });
});

// The clients.

interface NodemailerAuth {
  readonly user: string;
  readonly pass?: string;
  readonly method?: string;
  readonly type?: 'OAuth2';
  readonly accessToken?: string;
}

async function sendWithNodemailer(
  port: number,
  kind: Port,
  auth: NodemailerAuth,
  marker: string,
): Promise<{ accepted: (string | { address: string })[] }> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    // submissions: TLS from the first byte; submission: STARTTLS, and never AUTH without it.
    secure: kind === 'submissions',
    requireTLS: kind === 'submission',
    tls: { rejectUnauthorized: false },
    name: 'client.example.test',
    auth: auth as never,
  });
  try {
    const info = await transport.sendMail({
      from: ALICE,
      to: BOB,
      envelope: { from: ALICE, to: [BOB, REMOTE] },
      subject: marker,
      text: 'hello from nodemailer',
    });
    return { accepted: info.accepted };
  } finally {
    transport.close();
  }
}

/** Logs in with `mechanism` (or login(), which picks one) after starttls(), then sends. */
const SMTPLIB_SCRIPT = `
import json, smtplib, ssl, sys
port, mechanism, user, password, starttls = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
recipients = sys.argv[6].split(",")
msg = sys.stdin.read()
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
try:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test", timeout=30) as s:
        if starttls:
            s.starttls(context=context)
        s.ehlo_or_helo_if_needed()
        if mechanism == "login()":
            s.login(user, password)
        else:
            # auth() sends AUTH whether or not EHLO offered it: that is how the 530 test gets one.
            s.user, s.password = user, password
            method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mechanism]
            s.auth(mechanism, method)
        refused = s.sendmail(user, recipients, msg)
    print(json.dumps({"ok": True, "refused": sorted(refused)}))
except smtplib.SMTPResponseException as e:
    print(json.dumps({"ok": False, "code": e.smtp_code, "text": e.smtp_error.decode("utf-8", "replace")}))
`;

interface SmtplibResult {
  readonly ok: boolean;
  readonly refused?: string[];
  readonly code?: number;
  readonly text?: string;
}

async function sendWithSmtplib(
  port: number,
  mechanism: string,
  password: string,
  message: string,
  options: { starttls?: boolean } = {},
): Promise<SmtplibResult> {
  requireTool('python3', 'python3');
  const starttls = options.starttls ?? true;
  const args = ['-c', SMTPLIB_SCRIPT, String(port), mechanism, ALICE, password, starttls ? '1' : '0', `${BOB},${REMOTE}`];
  const run = await runTool('python3', args, message);
  assert.equal(run.code, 0, `python3 failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as SmtplibResult;
}

async function sendWithSwaks(
  port: number,
  kind: Port,
  mechanism: string,
  password: string,
  marker: string,
): Promise<{ code: number | null; output: string }> {
  requireTool('swaks', 'swaks');
  const run = await runTool('swaks', [
    '--server', '127.0.0.1',
    '--port', String(port),
    kind === 'submission' ? '--tls' : '--tlsc',
    '--auth', mechanism,
    '--auth-user', ALICE,
    '--auth-password', password,
    '--helo', 'client.example.test',
    '--from', ALICE,
    '--to', `${BOB},${REMOTE}`,
    '--header', `Subject: ${marker}`,
    '--body', 'hello from swaks',
  ]);
  return { code: run.code, output: run.stdout + run.stderr };
}

/** curl as a submission client: -T - reads the message from stdin; -v shows the dialogue on stderr. */
async function sendWithCurl(
  port: number,
  kind: Port,
  mechanism: string,
  credentials: readonly string[],
  message: string,
): Promise<{ code: number | null; output: string }> {
  requireTool('curl', 'curl');
  // The URL's path is the name curl gives in EHLO.
  const url = `${kind === 'submissions' ? 'smtps' : 'smtp'}://127.0.0.1:${port}/client.example.test`;
  const run = await runTool(
    'curl',
    [
      '-sS', '-v',
      '--ssl-reqd', '-k',
      url,
      ...credentials,
      '--login-options', `AUTH=${mechanism}`,
      '--mail-from', ALICE,
      '--mail-rcpt', BOB,
      '--mail-rcpt', REMOTE,
      '-T', '-',
    ],
    message,
  );
  return { code: run.code, output: run.stdout + run.stderr };
}

// A raw session over TLS, for SCRAM and the refusals.

/** Connected and greeted; on submission, already through STARTTLS (before any EHLO of ours). */
async function openTls(port: number, kind: Port): Promise<SmtpClient> {
  if (kind === 'submissions') {
    const client = await SmtpClient.connectTls(port);
    assert.match((await client.readReply()).raw, /^220 /);
    return client;
  }
  const client = await SmtpClient.connect(port);
  assert.match((await client.readReply()).raw, /^220 /);
  await client.command('EHLO client.example.test');
  assert.match((await client.command('STARTTLS')).raw, /^220 /);
  await client.startTls();
  return client;
}

/** The whole SCRAM exchange; returns the server's final reply (235 or the failure). */
async function scramLogin(client: SmtpClient, scram: ScramClient): Promise<string> {
  const first = (await client.command(`AUTH ${scram.mechanism} ${b64(scram.clientFirst())}`)).raw;
  if (!first.startsWith('334 ')) return first;
  const final = (await client.command(b64(scram.clientFinal(unb64(first))))).raw;
  if (!final.startsWith('334 ')) return final;
  // The server-final message (v=...) comes as a last challenge; the client proves the server
  // knew its keys before it sends the empty response (RFC 4954 section 4).
  scram.verifyServerFinal(unb64(final));
  return (await client.command('')).raw;
}

async function sendMail(client: SmtpClient, to: readonly string[], data: string): Promise<void> {
  assert.match((await client.command(`MAIL FROM:<${ALICE}>`)).raw, /^250 /);
  for (const rcpt of to) assert.match((await client.command(`RCPT TO:<${rcpt}>`)).raw, /^250 /);
  assert.match((await client.command('DATA')).raw, /^354 /);
  assert.match((await client.command(`${data}.`)).raw, /^250 /);
}

function plainResponse(user: string, password: string): string {
  return b64(`\0${user}\0${password}`);
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** The base64 text of a "334 ..." challenge, decoded. */
function unb64(reply: string): string {
  return Buffer.from(reply.slice(4).trim(), 'base64').toString('utf8');
}

