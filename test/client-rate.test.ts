// [limits] client_connection_rate and client_message_rate against the running server, and the
// fail2ban filter in contrib/ against the lines that server wrote, run by Debian's fail2ban.
// Clients connect from their own loopback addresses (127.0.0.0/8 is all ours), each test from
// fresh ones, so every test starts with empty counts; only 127.0.0.1 is trusted. The limit is 3 a
// minute: rounded up (client-rate.ts), 4 events are counted whole unless they span 60/3 = 20 s,
// even across a window boundary, and each test's take well under a second. No clock is needed.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { requireTool, runTool } from './support/external-tool.js';
import { PosternInstance, type PosternProcess, REPO_ROOT, stopAndDispose } from './support/postern-process.js';
import { SmtpClient } from './support/smtp-client.js';

const RATE = 3;
const ALICE = 'alice@example.test';
const PASSWORD = 'correct horse battery staple';
const FILTER = join(REPO_ROOT, 'contrib', 'fail2ban', 'filter.d', 'postern.conf');
const JAIL = join(REPO_ROOT, 'contrib', 'fail2ban', 'jail.d', 'postern.conf');
const MESSAGE = 'From: <bob@remote.test>\r\nTo: <alice@example.test>\r\nSubject: rate\r\n\r\nhello\r\n';

describe('[limits] client_connection_rate and client_message_rate', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  const clients: SmtpClient[] = [];

  async function connectFrom(localAddress: string, kind: 'mx' | 'submission' = 'mx'): Promise<SmtpClient> {
    const client = await SmtpClient.connect(server.port(kind), '127.0.0.1', localAddress);
    clients.push(client);
    return client;
  }

  /** A whole SMTP session that the server accepts: greeting, EHLO, QUIT. */
  async function servedSession(localAddress: string, kind: 'mx' | 'submission' = 'mx'): Promise<void> {
    const c = await connectFrom(localAddress, kind);
    await c.expect(220);
    await c.command('EHLO client.remote.test', 250);
    await c.quit();
  }

  const rateLine = (msg: string, ip: string) => server.waitForLog((e) => e.msg === msg && e.client_ip === ip);

  before(async () => {
    instance = new PosternInstance({
      pop3: true,
      limits: { trusted_networks: ['127.0.0.1/32'], client_connection_rate: RATE, client_message_rate: RATE },
    });
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE, PASSWORD);
    server = await instance.start();
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await stopAndDispose(server, instance);
  });

  test('the connection over the rate gets 421 4.7.0 before the greeting, and one log line', async () => {
    for (let i = 0; i < RATE; i++) await servedSession('127.0.0.21');
    const refused = await connectFrom('127.0.0.21');
    assert.equal(
      (await refused.readReply()).raw,
      '421 4.7.0 mx.postern.test Too many connections from your address in the last minute, try again later\r\n',
    );
    await refused.closed;
    const line = await rateLine('connection rate limit exceeded', '127.0.0.21');
    assert.deepEqual([line.listener, line.count, line.limit], ['mx', RATE + 1, RATE]);
    const connection = await server.waitForLog((e) => e.msg === 'connection' && e.client_ip === '127.0.0.21' && e.outcome === 'refused');
    assert.equal(connection.listener, 'mx');
    // Another address has its own count.
    await servedSession('127.0.0.29');
  });

  test('the SMTP listeners share one count; on implicit TLS the refusal is a close before any handshake', async () => {
    await servedSession('127.0.0.22', 'mx');
    await servedSession('127.0.0.22', 'submission');
    await servedSession('127.0.0.22', 'mx');
    const outcome = await new Promise<string>((resolve) => {
      const plain = netConnect({ port: server.port('submissions'), host: '127.0.0.1', localAddress: '127.0.0.22' });
      const socket = tlsConnect({ socket: plain, rejectUnauthorized: false });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve('handshake completed');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    assert.notEqual(outcome, 'handshake completed');
    const line = await rateLine('connection rate limit exceeded', '127.0.0.22');
    assert.equal(line.listener, 'submissions');
  });

  test('POP3 has a count of its own, and its refusal is -ERR [SYS/TEMP]', async () => {
    // This address has used up its SMTP budget; POP3 still serves it up to the rate.
    for (let i = 0; i < RATE; i++) await servedSession('127.0.0.23');
    assert.equal((await (await connectFrom('127.0.0.23')).readReply()).code, 421);
    const greetings: string[] = [];
    for (let i = 0; i <= RATE; i++) greetings.push(await pop3Greeting(server.port('pop3'), '127.0.0.23'));
    assert.deepEqual(
      greetings.map((g) => g.slice(0, 4)),
      ['+OK ', '+OK ', '+OK ', '-ERR'],
    );
    assert.equal(greetings[RATE], '-ERR [SYS/TEMP] Too many connections from your address in the last minute, try again later');
    const line = await server.waitForLog((e) => e.msg === 'connection rate limit exceeded' && e.client_ip === '127.0.0.23' && e.listener === 'pop3');
    assert.equal(line.count, RATE + 1);
    const refusal = await server.waitForLog((e) => e.msg === 'pop3 connection' && e.client_ip === '127.0.0.23' && e.outcome === 'refused');
    assert.equal(refusal.why, 'rate');
  });

  test('the message over the rate gets 450 4.7.1 at MAIL FROM, and one log line', async () => {
    const c = await connectFrom('127.0.0.24');
    await c.expect(220);
    await c.command('EHLO client.remote.test', 250);
    for (let i = 0; i < RATE; i++) assert.equal((await c.sendMail('bob@remote.test', [ALICE], MESSAGE)).code, 250);
    const refused = await c.command('MAIL FROM:<bob@remote.test>');
    assert.equal(refused.raw, '450 4.7.1 Too much mail from 127.0.0.24, try again later\r\n');
    // The session goes on: a refusal that is not the client's fault is no error (max_errors).
    await c.command('NOOP', 250);
    await c.quit();
    const line = await rateLine('message rate limit exceeded', '127.0.0.24');
    assert.deepEqual([line.listener, line.count, line.limit], ['mx', RATE + 1, RATE]);
    await instance.waitForMail(ALICE, RATE);
  });

  test('an authenticated submission is held to its account limits, not to its address rate', async () => {
    const c = await connectFrom('127.0.0.25', 'submission');
    await c.expect(220);
    await c.command('EHLO client.remote.test', 250);
    await c.command('STARTTLS', 220);
    await c.startTls();
    await c.command('EHLO client.remote.test', 250);
    await c.command(`AUTH PLAIN ${Buffer.from(`\0${ALICE}\0${PASSWORD}`).toString('base64')}`, 235);
    const own = MESSAGE.replace('bob@remote.test', ALICE);
    for (let i = 0; i < 2 * RATE; i++) assert.equal((await c.sendMail(ALICE, [ALICE], own)).code, 250);
    await c.quit();
  });

  test('trusted networks are exempt from both rates', async () => {
    for (let i = 0; i < 3 * RATE; i++) await servedSession('127.0.0.1');
    const c = await connectFrom('127.0.0.1');
    await c.expect(220);
    await c.command('EHLO client.remote.test', 250);
    for (let i = 0; i < 2 * RATE; i++) assert.equal((await c.sendMail('bob@remote.test', [ALICE], MESSAGE)).code, 250);
    await c.quit();
  });

  test('the fail2ban filter matches the rate and AUTH failure lines, with their client IP and time', async () => {
    requireTool('fail2ban-regex', 'fail2ban');
    // One line of each kind, from addresses of this test's own.
    for (let i = 0; i <= RATE; i++) await (await connectFrom('127.0.0.27')).readReply();
    const mx = await connectFrom('127.0.0.28');
    await mx.expect(220);
    await mx.command('EHLO client.remote.test', 250);
    for (let i = 0; i < RATE; i++) await mx.sendMail('bob@remote.test', [ALICE], MESSAGE);
    await mx.command('MAIL FROM:<bob@remote.test>', 450);
    await mx.quit();
    const c = await connectFrom('127.0.0.26', 'submission');
    await c.expect(220);
    await c.command('EHLO client.remote.test', 250);
    await c.command('STARTTLS', 220);
    await c.startTls();
    await c.command('EHLO client.remote.test', 250);
    await c.command(`AUTH PLAIN ${Buffer.from(`\0${ALICE}\0wrong`).toString('base64')}`, 535);
    await c.quit();
    await server.waitForLog((e) => e.msg === 'auth failed' && e.client_ip === '127.0.0.26');

    // The server's own lines, as it wrote them (the last 200, this test's among them).
    const lines = server.log().split('\n');
    const events = new Set(['connection rate limit exceeded', 'message rate limit exceeded', 'auth failed']);
    const expected = lines.filter((l) => l.startsWith('{') && events.has(String((JSON.parse(l) as { msg?: unknown }).msg)));
    const seen = new Set(expected.map((l) => `${(JSON.parse(l) as { msg: string }).msg} ${(JSON.parse(l) as { client_ip: string }).client_ip}`));
    for (const want of ['connection rate limit exceeded 127.0.0.27', 'message rate limit exceeded 127.0.0.28', 'auth failed 127.0.0.26']) {
      assert.ok(seen.has(want), `the log has "${want}"`);
    }
    // The log also holds lines that must not match: connections, messages, deliveries.
    assert.ok(lines.some((l) => l.includes('"msg":"connection"')) && lines.some((l) => l.includes('"msg":"message"')));

    const dir = mkdtempSync(join(tmpdir(), 'postern-fail2ban-'));
    try {
      const log = join(dir, 'postern.log');
      writeFileSync(log, `${lines.join('\n')}\n`);
      const matched = await fail2banRegex(log, 'msg');
      assert.deepEqual(matched, expected, 'fail2ban-regex matches exactly the rate and AUTH lines');
      // Each match is banned by its client_ip, at the line's own time (pino writes UTC).
      const rows = await fail2banRegex(log, 'row');
      assert.equal(rows.length, expected.length);
      rows.forEach((row, i) => {
        const entry = JSON.parse(expected[i] ?? '{}') as { client_ip: string; time: string };
        const parsed = /^\['([^']+)',\s*([\d.]+),/.exec(row);
        assert.ok(parsed, row);
        assert.equal(parsed[1], entry.client_ip);
        assert.equal(Math.floor(Number(parsed[2])), Math.floor(Date.parse(entry.time) / 1000), row);
      });

      // The jail loads in Debian's stock fail2ban configuration, reading this log.
      const conf = join(dir, 'fail2ban');
      cpSync('/etc/fail2ban', conf, { recursive: true });
      for (const name of readdirSync(join(conf, 'jail.d'))) rmSync(join(conf, 'jail.d', name));
      cpSync(FILTER, join(conf, 'filter.d', 'postern.conf'));
      cpSync(JAIL, join(conf, 'jail.d', 'postern.conf'));
      writeFileSync(join(conf, 'jail.d', 'postern.local'), `[postern]\nlogpath = ${log}\n`);
      const check = await runTool('fail2ban-client', ['-c', conf, '-t']);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout + check.stderr, /configuration test is successful/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The lines fail2ban-regex prints for each match of the filter in `log` (`out`: msg or row). */
async function fail2banRegex(log: string, out: 'msg' | 'row'): Promise<string[]> {
  // Run in a zone nine hours from UTC: a date pattern that ignored pino's "Z" would be 9 h off.
  const r = await runTool('env', ['TZ=JST-9', 'fail2ban-regex', '-o', out, log, FILTER]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => (out === 'row' ? l.trim() : l));
}

/** Connects to POP3 from `localAddress`, returns the server's first line (CRLF cut), and QUITs. */
function pop3Greeting(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress });
    let buffered = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const end = buffered.indexOf('\r\n');
      if (end < 0) return;
      socket.end('QUIT\r\n');
      resolve(buffered.slice(0, end));
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed before a line (got ${JSON.stringify(buffered)})`)));
  });
}
