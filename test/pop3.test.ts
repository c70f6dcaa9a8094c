// POP3 end to end: the real server process, its pop3 (STLS) and pop3s listeners, mail delivered
// by SMTP into the Maildir, and clients we did not write: Python's poplib and curl.

import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'smol-toml';
import { requireTool, runTool } from './support/external-tool.js';
import { poplib } from './support/poplib.js';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { SmtpClient } from './support/smtp-client.js';
import { TestTokenIssuer } from './support/test-token-issuer.js';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const PASSWORD = 'correct horse battery staple';

async function deliver(port: number, rcpt: string, subject: string, body = 'hello'): Promise<void> {
  const client = await SmtpClient.open(port);
  try {
    // "..": SMTP's dot-stuffing (RFC 5321 4.5.2); the stored line starts with one dot, which POP3
    // must stuff again on the way out (RFC 1939 3).
    const reply = await client.sendMail('sender@remote.test', [rcpt], `Subject: ${subject}\r\n\r\n${body}\r\n..leading dot\r\n`);
    assert.equal(reply.code, 250, reply.text);
    await client.quit();
  } finally {
    client.destroy();
  }
}

describe('POP3 with real clients', () => {
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    instance = new PosternInstance({ pop3: true, submission: false });
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE, PASSWORD);
    await instance.addUser(BOB, PASSWORD);
    server = await instance.start();
    for (const n of [1, 2, 3]) await deliver(server.port('mx'), ALICE, `pop-${n}`);
    await instance.waitForMail(ALICE, 3);
  });

  after(() => stopAndDispose(server, instance));

  test('poplib: STLS, USER/PASS, STAT, LIST, UIDL, RETR; sizes are the octets RETR sends', async () => {
    const out = await poplib(
      server.port('pop3'),
      `
p.user('${ALICE}')
p.pass_('${PASSWORD}')
count, total = p.stat()
log([count, total])
resp, listing, octets = p.list()
log([l.decode() for l in listing])
resp, uidls, octets = p.uidl()
log([l.decode() for l in uidls])
resp, lines, octets = p.retr(2)
log([l.decode('latin1') for l in lines])
log(octets)
p.quit()
`,
    );
    assert.match(String(out[0]), /^\+OK /);
    const [count, total] = out[1] as [number, number];
    assert.equal(count, 3);
    const listing = (out[2] as string[]).map((l) => l.split(' ').map(Number));
    assert.deepEqual(listing.map(([n]) => n), [1, 2, 3]);
    assert.equal(listing.reduce((sum, [, size]) => sum + (size ?? 0), 0), total);
    const uidls = (out[3] as string[]).map((l) => l.split(' ')[1]);
    assert.equal(new Set(uidls).size, 3);
    for (const u of uidls) assert.match(u ?? '', /^[\x21-\x7e]{1,70}$/);
    const lines = out[4] as string[];
    assert.ok(lines.includes('Subject: pop-2'), lines.join('\n'));
    assert.ok(lines.includes('.leading dot'), 'dot-stuffing undone by the client');
    // poplib counts each line plus its CRLF, except that a stuffed dot is counted as sent.
    const sent = lines.reduce((sum, l) => sum + Buffer.byteLength(l, 'latin1') + 2, 0);
    assert.ok(Math.abs(sent - (listing[1]?.[1] ?? 0)) <= 1, `LIST size ${listing[1]?.[1]} against ${sent} octets received`);
  });

  test('before STLS: no USER in CAPA, and USER is refused; APOP is not offered', async () => {
    const out = await poplib(
      server.port('pop3'),
      `
log([c for c in p.capa()])
try:
    p.user('${ALICE}')
    log('user accepted')
except poplib.error_proto as e:
    log('user: ' + e.args[0].decode())
try:
    # poplib itself refuses APOP: our greeting has no timestamp to hash. Ask the server anyway.
    p._shortcmd('APOP ${ALICE} c4c9334bac560ecc979e58001b3e22fb')
    log('apop accepted')
except poplib.error_proto as e:
    reason = e.args[0]
    log('apop: ' + (reason.decode() if isinstance(reason, bytes) else reason))
`,
      { stls: false },
    );
    const caps = out[1] as string[];
    assert.ok(caps.includes('STLS'), `CAPA: ${caps.join(', ')}`);
    assert.ok(!caps.includes('USER'), 'no USER before TLS');
    assert.match(String(out[2]), /^user: -ERR /);
    assert.match(String(out[3]), /^apop: -ERR /);
  });

  test('a wrong password and an unknown user get the same answer', async () => {
    const wrong = await poplib(server.port('pop3'), `p.user('${ALICE}')\np.pass_('not the password')`);
    const unknown = await poplib(server.port('pop3'), `p.user('nobody@example.test')\np.pass_('${PASSWORD}')`);
    assert.match(String(wrong.at(-1)), /^error: -ERR/);
    assert.equal(wrong.at(-1), unknown.at(-1));
  });

  test('leave on server: UIDLs are the same in the next session; DELE takes effect only at QUIT', async () => {
    const first = await poplib(
      server.port('pop3'),
      `
p.user('${ALICE}')
p.pass_('${PASSWORD}')
resp, uidls, octets = p.uidl()
log([l.decode() for l in uidls])
p.quit()
`,
    );
    const second = await poplib(
      server.port('pop3'),
      `
p.user('${ALICE}')
p.pass_('${PASSWORD}')
resp, uidls, octets = p.uidl()
log([l.decode() for l in uidls])
p.dele(1)
p.rset()
p.quit()
`,
    );
    assert.deepEqual(second[1], first[1], 'same UIDLs across sessions');
    assert.equal(instance.readMaildir(ALICE).length, 3, 'RSET undid the DELE');
  });

  test('a second session gets [IN-USE] while the first holds the mailbox; a dropped one deletes nothing', async () => {
    await deliver(server.port('mx'), BOB, 'bob-1');
    await instance.waitForMail(BOB, 1);
    const holder = await rawPop3s(server.port('pop3s'));
    assert.match(await holder.command(`USER ${BOB}`), /^\+OK/);
    assert.match(await holder.command(`PASS ${PASSWORD}`), /^\+OK/);
    assert.match(await holder.command('DELE 1'), /^\+OK/);
    const out = await poplib(server.port('pop3'), `p.user('${BOB}')\np.pass_('${PASSWORD}')`);
    assert.match(String(out.at(-1)), /^error: -ERR \[IN-USE\]/);
    holder.drop(); // no QUIT: no UPDATE
    for (let i = 0; i < 100; i++) {
      const again = await poplib(server.port('pop3'), `p.user('${BOB}')\np.pass_('${PASSWORD}')\nlog(p.stat())\np.quit()`);
      if (!String(again.at(-1)).includes('IN-USE')) {
        assert.deepEqual((again.at(-1) as number[])[0], 1, 'the message is still there');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail('the dropped session never released the mailbox');
  });

  test('curl pop3s://: list and retrieve', async () => {
    requireTool('curl', 'curl');
    const base = `pop3s://127.0.0.1:${server.port('pop3s')}/`;
    const auth = ['--insecure', '--silent', '--show-error', '--user', `${ALICE}:${PASSWORD}`];
    const list = await runTool('curl', [...auth, base]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^1 \d+\r?\n2 \d+\r?\n3 \d+\r?\n$/);
    const one = await runTool('curl', [...auth, `${base}1`]);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /Subject: pop-1/);
  });
});

/** A POP3 client over implicit TLS that can leave without QUIT. */
async function rawPop3s(port: number): Promise<{ command(line: string): Promise<string>; drop(): void }> {
  const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
  let buffered = '';
  let wake: (() => void) | undefined;
  socket.setEncoding('latin1');
  socket.on('data', (s: string) => {
    buffered += s;
    wake?.();
  });
  socket.on('error', () => undefined);
  const line = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf('\r\n');
      if (nl >= 0) {
        const l = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        return l;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  await line(); // greeting
  return {
    async command(text: string): Promise<string> {
      socket.write(`${text}\r\n`);
      return line();
    },
    drop: () => socket.destroy(),
  };
}

describe('POP3 AUTH with bearer tokens (RFC 7628 OAUTHBEARER, XOAUTH2)', () => {
  let issuer: TestTokenIssuer;
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    issuer = new TestTokenIssuer();
    instance = new PosternInstance({ pop3: true, submission: false });
    appendFileSync(
      instance.configPath,
      `\n${stringify({
        auth: {
          oauth: issuer.oauthConfig(),
          throttle: { delay_ms: 50, max_delay_ms: 200 },
        },
      })}\n`,
    );
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE, PASSWORD);
    server = await instance.start();
    await deliver(server.port('mx'), ALICE, 'token-mail');
    await instance.waitForMail(ALICE, 1);
  });

  after(async () => {
    await stopAndDispose(server, instance);
    issuer.close();
  });

  test('curl pop3s:// --oauth2-bearer logs in with OAUTHBEARER and lists the mail', async () => {
    requireTool('curl', 'curl');
    const token = issuer.sign(issuer.claimsFor(ALICE), { alg: 'ES256' });
    const run = await runTool('curl', [
      '--insecure', '--silent', '--show-error', '--verbose',
      '--user', `${ALICE}:`, '--oauth2-bearer', token,
      `pop3s://127.0.0.1:${server.port('pop3s')}/`,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^> AUTH OAUTHBEARER\b/m, 'curl used OAUTHBEARER');
    assert.match(run.stdout, /^1 \d+\r?\n$/);
  });

  test('XOAUTH2 with a signed JWT; a token for another account and an expired one are refused', async () => {
    const xoauth2 = (user: string, token: string) => Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
    const good = await rawPop3s(server.port('pop3s'));
    try {
      assert.match(await good.command(`AUTH XOAUTH2 ${xoauth2(ALICE, issuer.sign(issuer.claimsFor(ALICE)))}`), /^\+OK/);
      assert.match(await good.command('STAT'), /^\+OK 1 \d+$/);
    } finally {
      good.drop();
    }
    const refused = [
      issuer.sign(issuer.claimsFor('mallory@example.test')),
      issuer.sign(issuer.claimsFor(ALICE, { exp: Math.floor(Date.now() / 1000) - 60 })),
    ];
    for (const token of refused) {
      const bad = await rawPop3s(server.port('pop3s'));
      try {
        const answer = await bad.command(`AUTH XOAUTH2 ${xoauth2(ALICE, token)}`);
        // XOAUTH2 answers a failure with a JSON error challenge; the client's empty line ends it.
        const final = answer.startsWith('+ ') ? await bad.command('') : answer;
        assert.match(final, /^-ERR \[AUTH\]/);
      } finally {
        bad.drop();
      }
    }
  });
});
