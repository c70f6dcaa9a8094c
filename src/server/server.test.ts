// The server end to end: real sockets on 127.0.0.1, real files in a temp dir, the real session,
// store and queue. Tests may run as root: the server then switches the whole test process to
// "nobody", so every temp dir is made mode 0755 and is itself the data_dir (chowned to nobody).

import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { pino, type Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import { configSchema, type Config } from '../config/schema.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { startServer } from './server.js';
import { SmtpClient } from '../../test/support/smtp-client.js';
import { eventually, testServer, type TestServer } from '../../test/support/test-server.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-server-'));
  fs.chmodSync(dir, 0o755);
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A real pino logger whose lines the test can read. */
function capturingLogger(): { logger: Logger; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  return { logger, logs };
}

async function addMailbox(dir: string, address: string): Promise<void> {
  const store = openSqliteStore(path.join(dir, 'postern.db'));
  const domain = address.slice(address.indexOf('@') + 1);
  if (!(await store.isLocalDomain(domain))) await store.addDomain(domain);
  await store.addUser(address, { passwordHash: '$scrypt$ln=15,r=8,p=1$AAAA$AAAA' });
  await store.close();
}

function testConfig(dir: string, extra: Record<string, unknown> = {}): Config {
  return configSchema.parse({
    hostname: 'mx.example.test',
    data_dir: dir,
    user: '',
    listen: { mx: ['127.0.0.1:0'], submission: ['127.0.0.1:0'], submissions: ['127.0.0.1:0'], pop3: [], pop3s: [], http: [], https: [], metrics: [] },
    ...extra,
  });
}

async function start(extra: Record<string, unknown> = {}, opts: { configPath?: string; config?: Config } = {}): Promise<TestServer> {
  const dir = opts.config?.data_dir ?? tempDir();
  await addMailbox(dir, 'alice@example.test');
  const { logger, logs } = capturingLogger();
  const config = opts.config ?? testConfig(dir, extra);
  const server = await startServer(config, { logger, ...(opts.configPath ? { configPath: opts.configPath } : {}) });
  cleanups.push(() => server.stop());
  return testServer(server, dir, logs);
}

async function connect(port: number): Promise<SmtpClient> {
  const c = await SmtpClient.connect(port);
  cleanups.push(() => c.destroy());
  return c;
}

const connectionLog = (logs: Record<string, unknown>[], pred: (l: Record<string, unknown>) => boolean) =>
  logs.find((l) => l.msg === 'connection' && pred(l));

describe('plain SMTP on the mx listener', () => {
  test('greeting, EHLO with STARTTLS offered, QUIT, and one connection log line', async () => {
    const t = await start();
    assert.equal(t.logs.find((l) => l.msg === 'listening')?.listeners !== undefined, true);
    const c = await connect(t.port('mx'));
    assert.equal((await c.readReply()).raw, '220 mx.example.test ESMTP Postern\r\n');
    const ehlo = (await c.command('EHLO client.example')).raw;
    assert.match(ehlo, /^250-mx\.example\.test\r\n/);
    assert.match(ehlo, /^250[- ]STARTTLS\r$/m);
    assert.match((await c.command('QUIT')).raw, /^221 /);
    await c.closed;
    const line = await eventually(() => connectionLog(t.logs, (l) => l.helo === 'client.example'), 'connection line');
    assert.equal(line.listener, 'mx');
    assert.equal(line.client_ip, '127.0.0.1');
    assert.equal(line.tls_version, null);
    assert.equal(line.outcome, 'closed');
  });

  test('STARTTLS upgrades; EHLO over TLS no longer offers it', async () => {
    const t = await start();
    const c = await connect(t.port('mx'));
    await c.readReply();
    await c.command('EHLO client.example');
    assert.match((await c.command('STARTTLS')).raw, /^220 2\.0\.0 /);
    const protocol = (await c.startTls()).getProtocol();
    assert.ok(protocol === 'TLSv1.3' || protocol === 'TLSv1.2');
    const ehlo = (await c.command('EHLO client.example')).raw;
    assert.match(ehlo, /^250-mx\.example\.test\r\n/);
    assert.doesNotMatch(ehlo, /STARTTLS/);
    assert.match((await c.command('STARTTLS')).raw, /^503 5\.5\.1 /);
    await c.command('QUIT');
    await c.closed;
    const line = await eventually(() => connectionLog(t.logs, () => true), 'connection line');
    assert.equal(line.tls_version, protocol);
  });

  test('commands pipelined after STARTTLS are never executed (CVE-2011-0411)', async () => {
    const t = await start();
    const c = await connect(t.port('mx'));
    await c.readReply();
    await c.command('EHLO client.example');
    c.send('STARTTLS\r\nRSET\r\n');
    assert.match((await c.readReply()).raw, /^220 2\.0\.0 /);
    await c.startTls();
    // Only the 220 came before the handshake; nothing was left over for the injected RSET.
    assert.equal(c.pending, '');
    // The first reply inside TLS answers our EHLO, not the injected RSET.
    const first = (await c.command('EHLO client.example')).raw;
    assert.match(first, /^250-mx\.example\.test\r\n/);
    assert.match((await c.command('NOOP')).raw, /^250 2\.0\.0/);
    assert.equal(c.pending, '');
  });

  test('a client over the per-IP limit gets 421 4.7.0 and is closed', async () => {
    const t = await start({ limits: { max_connections_per_ip: 1, trusted_networks: [] } });
    const first = await connect(t.port('mx'));
    assert.match((await first.readReply()).raw, /^220 /);
    const second = await connect(t.port('mx'));
    assert.equal(
      (await second.readReply()).raw,
      '421 4.7.0 mx.example.test Too many connections from your address, try again later\r\n',
    );
    await second.closed;
    assert.match((await first.command('NOOP')).raw, /^250 /);
  });

  test('loopback is a trusted network by default: no per-IP cap, the total still applies', async () => {
    const t = await start({ limits: { max_connections_per_ip: 1, max_connections: 3 } });
    const clients = [];
    for (let i = 0; i < 3; i++) {
      const c = await connect(t.port('mx'));
      assert.match((await c.readReply()).raw, /^220 /, `connection ${i + 1}`);
      clients.push(c);
    }
    const fourth = await connect(t.port('mx'));
    assert.match((await fourth.readReply()).raw, /^421 4\.7\.0 mx\.example\.test Too many connections, try again later\r\n$/, "the total limit, not the per-IP one");
    await fourth.closed;
    // Trust changes nothing else: relaying from loopback is still refused.
    const [first] = clients;
    await first!.command('EHLO client.example');
    assert.match((await first!.command('MAIL FROM:<someone@elsewhere.example>')).raw, /^250 /);
    assert.match((await first!.command('RCPT TO:<victim@remote.example>')).raw, /^554 5\.7\.1 /);
  });

  test('an idle client is timed out with 421 4.4.2', async () => {
    const t = await start({ limits: { command_timeout: 1 } });
    const c = await connect(t.port('mx'));
    await c.readReply();
    await c.command('EHLO client.example');
    assert.match((await c.readReply()).raw, /^421 4\.4\.2 mx\.example\.test /);
    await c.closed;
    const line = await eventually(() => connectionLog(t.logs, () => true), 'connection line');
    assert.equal(line.outcome, 'timeout');
  });

  test('inside DATA the data timeout applies, not the command timeout', async () => {
    const t = await start({ limits: { command_timeout: 600, data_timeout: 1 } });
    const c = await connect(t.port('mx'));
    await c.readReply();
    await c.command('EHLO client.example');
    await c.command('MAIL FROM:<bob@remote.test>');
    await c.command('RCPT TO:<alice@example.test>');
    assert.match((await c.command('DATA')).raw, /^354 /);
    c.send('Subject: slow\r\n');
    assert.match((await c.readReply()).raw, /^421 4\.4\.2 /);
    await c.closed;
    assert.equal(t.logs.filter((l) => l.msg === 'message').length, 0);
  });

  test('a failed STARTTLS handshake closes the connection', async () => {
    const t = await start();
    const c = await connect(t.port('mx'));
    await c.readReply();
    await c.command('EHLO client.example');
    assert.match((await c.command('STARTTLS')).raw, /^220 /);
    c.send('this is not a ClientHello\r\n');
    await c.closed;
    const line = await eventually(() => connectionLog(t.logs, () => true), 'connection line');
    assert.equal(line.outcome, 'tls-failed');
    assert.equal(line.tls_version, null);
  });

  test('a client that talks before the greeting is refused', async () => {
    const t = await start({ limits: { greeting_delay_ms: 300 } });
    const c = await connect(t.port('mx'));
    c.send('EHLO hasty.example\r\n');
    assert.match((await c.readReply()).raw, /^554 5\.5\.1 mx\.example\.test /);
    await c.closed;
  });

  test('a patient client gets the greeting after the delay', async () => {
    const t = await start({ limits: { greeting_delay_ms: 50 } });
    const c = await connect(t.port('mx'));
    assert.match((await c.readReply()).raw, /^220 mx\.example\.test /);
  });
});

describe('implicit TLS on the submissions listener', () => {
  test('the greeting comes over TLS and STARTTLS is not offered', async () => {
    const t = await start();
    const c = await SmtpClient.connectTls(t.port('submissions'));
    cleanups.push(() => c.destroy());
    assert.match((await c.readReply()).raw, /^220 mx\.example\.test /);
    const ehlo = (await c.command('EHLO client.example')).raw;
    assert.match(ehlo, /^250-mx\.example\.test\r\n/);
    assert.doesNotMatch(ehlo, /STARTTLS/);
  });

  test('a plaintext client on the TLS port is dropped without a session', async () => {
    const t = await start();
    const c = await connect(t.port('submissions'));
    c.send('EHLO confused.example\r\n');
    // Closed without a single reply, not even a partial one counted as one.
    await assert.rejects(c.readReply(), /connection closed while waiting for a reply/);
    const line = await eventually(() => connectionLog(t.logs, () => true), 'connection line');
    assert.equal(line.outcome, 'tls-failed');
    assert.equal(line.listener, 'submissions');
  });
});

describe('mail delivery', () => {
  test('a message sent with nodemailer lands in the Maildir', async () => {
    const t = await start();
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: t.port('mx'),
      secure: false,
      tls: { rejectUnauthorized: false },
    });
    const info = await transport.sendMail({
      from: 'bob@remote.test',
      to: 'alice@example.test',
      subject: 'hello from nodemailer',
      text: 'It works.',
    });
    transport.close();
    assert.deepEqual(info.accepted, ['alice@example.test']);
    const newDir = path.join(t.dir, 'mail', 'example.test', 'alice', 'new');
    const file = await eventually(() => (fs.existsSync(newDir) ? fs.readdirSync(newDir)[0] : undefined), 'a Maildir file');
    const text = fs.readFileSync(path.join(newDir, file), 'utf8');
    assert.match(text, /Subject: hello from nodemailer/);
    assert.match(text, /It works\./);
    const logged = await eventually(() => t.logs.find((l) => l.msg === 'message'), 'message line');
    assert.equal(logged.sender, 'bob@remote.test');
    assert.deepEqual(logged.recipients, ['alice@example.test']);
    assert.match(String(logged.outcome), /^250 2\.0\.0 /);
  });

  test('messages from several connections at once, sent in odd pieces with DATA and BDAT, arrive byte for byte', async () => {
    // Plain connections share one read buffer (shared-reads.ts); whatever a session kept without
    // copying would show here as zeros or as another connection's bytes.
    const t = await start();
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const messageOf = (id: string, size: number): string => {
      const lines = [`Subject: ${id}`, `Message-ID: <${id}@test>`, ''];
      let length = 0;
      while (length < size) {
        const line = Array.from({ length: random(200) }, () => String.fromCharCode(33 + random(94))).join('');
        // Some lines start with a dot, which DATA stuffs and the server unstuffs.
        const text = random(10) === 0 ? `.${line}` : line;
        lines.push(text);
        length += text.length + 2;
      }
      return `${lines.join('\r\n')}\r\n`;
    };
    /** Writes `text` in pieces of 1 to 9000 octets, each in its own write. */
    const sendInPieces = async (socket: net.Socket, text: string): Promise<void> => {
      const bytes = Buffer.from(text, 'latin1');
      for (let at = 0; at < bytes.length; ) {
        const piece = bytes.subarray(at, at + 1 + random(9000));
        at += piece.length;
        if (!socket.write(piece)) await new Promise((r) => socket.once('drain', r));
        if (random(4) === 0) await new Promise((r) => setImmediate(r));
      }
    };
    const sent = new Map<string, string>();
    const session = async (n: number): Promise<void> => {
      const socket = net.connect(t.port('mx'), '127.0.0.1');
      cleanups.push(() => {
        socket.destroy();
      });
      let received = '';
      socket.setEncoding('latin1').on('data', (d: string) => (received += d));
      const replies = (count: number): Promise<boolean> =>
        eventually(() => ((received.match(/^\d{3} /gm) ?? []).length >= count ? true : undefined), `reply ${count} on connection ${n}: ${received.slice(-200)}`);
      await replies(1);
      let expected = 1;
      await sendInPieces(socket, 'EHLO client.example\r\n');
      await replies(++expected);
      for (const size of [500, 70_000, 300_000]) {
        const id = `c${n}-${size}`;
        const message = messageOf(id, size);
        sent.set(id, message);
        if (n % 2 === 0) {
          const stuffed = message.replace(/^\./gm, '..');
          await sendInPieces(socket, `MAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n`);
          await replies((expected += 3));
          await sendInPieces(socket, `${stuffed}.\r\n`);
        } else {
          // BDAT: the chunks' own octets, pipelined behind the envelope.
          const bytes = Buffer.from(message, 'latin1');
          const cut = Math.floor(bytes.length / 3);
          const chunks = [bytes.subarray(0, cut), bytes.subarray(cut)];
          let text = 'MAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.test>\r\n';
          chunks.forEach((chunk, i) => (text += `BDAT ${chunk.length}${i === chunks.length - 1 ? ' LAST' : ''}\r\n${chunk.toString('latin1')}`));
          await sendInPieces(socket, text);
          expected += 3;
        }
        await replies(++expected);
      }
      assert.doesNotMatch(received, /^[45]\d\d /m);
      socket.end('QUIT\r\n');
    };
    await Promise.all([0, 1, 2, 3].map((n) => session(n)));
    const newDir = path.join(t.dir, 'mail', 'example.test', 'alice', 'new');
    const files = await eventually(() => (fs.existsSync(newDir) && fs.readdirSync(newDir).length === sent.size ? fs.readdirSync(newDir) : undefined), 'every message filed');
    for (const file of files) {
      const text = fs.readFileSync(path.join(newDir, file), 'latin1');
      const id = /^Subject: (\S+)$/m.exec(text)?.[1] ?? '';
      const original = sent.get(id);
      assert.ok(original !== undefined, `an unknown message ${file}`);
      // Our Received header goes in front; the rest is the message as sent.
      assert.ok(text.endsWith(original) && text.length - original.length < 1024, `${id} arrived changed`);
    }
  });
});

describe('reload and stop', () => {
  test('reload() applies to new connections and keeps open sessions working; a bad file changes nothing', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'postern.toml');
    const toml = (hostname: string) =>
      [
        `hostname = "${hostname}"`,
        `data_dir = "${dir}"`,
        'user = ""',
        '[listen]',
        'mx = ["127.0.0.1:0"]',
        'submission = ["127.0.0.1:0"]',
        'submissions = ["127.0.0.1:0"]',
        'pop3 = []',
        'pop3s = []',
        'http = []',
        'https = []',
        'metrics = []',
        '',
      ].join('\n');
    fs.writeFileSync(file, toml('mx.example.test'));
    const t = await start({}, { configPath: file, config: loadConfig(file).config });

    const open = await connect(t.port('mx'));
    assert.match((await open.readReply()).raw, /^220 mx\.example\.test /);
    assert.match((await open.command('EHLO client.example')).raw, /^250-mx\.example\.test/);
    assert.match((await open.command('MAIL FROM:<bob@remote.test>')).raw, /^250 /);

    fs.writeFileSync(file, toml('mx2.example.test'));
    await t.server.reload();
    assert.ok(t.logs.some((l) => l.msg === 'reloaded'));

    // The open session carries on under the rules it started with.
    assert.match((await open.command('RCPT TO:<alice@example.test>')).raw, /^250 /);
    assert.match((await open.command('EHLO client.example')).raw, /^250-mx\.example\.test/);
    // New connections see the new config, over a fresh certificate for the new name.
    const fresh = await connect(t.port('mx'));
    assert.match((await fresh.readReply()).raw, /^220 mx2\.example\.test /);
    await fresh.command('EHLO client.example');
    assert.match((await fresh.command('STARTTLS')).raw, /^220 /);
    const secure = await fresh.startTls();
    assert.match(String(secure.getPeerCertificate().subject?.CN), /^mx2\.example\.test$/);

    assert.ok(!t.logs.some((l) => String(l.msg).includes('read at start only')));

    // What the running queue and sockets were built from waits for a restart, and the log says so.
    fs.writeFileSync(file, `${toml('mx2.example.test')}[queue]\ngive_up = "2d"\n[relay]\nsmarthost = "relay.example.test:587"\n`);
    await t.server.reload();
    const warned = t.logs.filter((l) => String(l.msg).includes('read at start only'));
    assert.deepEqual(warned.map((l) => [l.level, l.keys, l.msg]), [[40, ['queue', 'relay'], 'queue, relay: changed, but read at start only; restart to apply']]);

    fs.writeFileSync(file, 'hostname = \n');
    await t.server.reload();
    assert.ok(t.logs.some((l) => l.msg === 'reload failed; still running with the previous config'));
    const after = await connect(t.port('mx'));
    assert.match((await after.readReply()).raw, /^220 mx2\.example\.test /);
  });

  test('a reload changes the client connection rate and keeps the counts', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'postern.toml');
    const toml = (rate: number) =>
      [
        'hostname = "mx.example.test"',
        `data_dir = "${dir}"`,
        'user = ""',
        '[listen]',
        'mx = ["127.0.0.1:0"]',
        'submission = []',
        'submissions = []',
        'pop3 = []',
        'pop3s = []',
        'http = []',
        'https = []',
        'metrics = []',
        '[limits]',
        'trusted_networks = []',
        `client_connection_rate = ${rate}`,
        '',
      ].join('\n');
    fs.writeFileSync(file, toml(2));
    const t = await start({}, { configPath: file, config: loadConfig(file).config });
    const greeting = async () => (await (await connect(t.port('mx'))).readReply()).code;
    // Well within a minute: the counts cannot age out between these connections.
    assert.deepEqual([await greeting(), await greeting(), await greeting()], [220, 220, 421]);
    fs.writeFileSync(file, toml(4));
    await t.server.reload();
    // The refused one counted too: this is the 4th of 4, and the next is over.
    assert.deepEqual([await greeting(), await greeting()], [220, 421]);
    assert.equal(t.logs.filter((l) => l.msg === 'connection rate limit exceeded').length, 2);
  });

  test('stop() ends idle sessions with 421 4.3.2 and lets a message in DATA finish', async () => {
    const t = await start();
    const sending = await connect(t.port('mx'));
    await sending.readReply();
    await sending.command('EHLO client.example');
    await sending.command('MAIL FROM:<bob@remote.test>');
    assert.match((await sending.command('RCPT TO:<alice@example.test>')).raw, /^250 /);
    assert.match((await sending.command('DATA')).raw, /^354 /);
    sending.send('Subject: in flight\r\n\r\nstill typing\r\n');

    const idle = await connect(t.port('mx'));
    await idle.readReply();
    await idle.command('EHLO idle.example');

    let stopped = false;
    const stopping = t.server.stop().then(() => {
      stopped = true;
    });
    assert.match((await idle.readReply()).raw, /^421 4\.3\.2 mx\.example\.test /);
    await idle.closed;
    // No new connections once stopping.
    await assert.rejects(SmtpClient.connect(t.port('mx')), /ECONNREFUSED/);
    assert.equal(stopped, false, 'stop waits for the message in DATA');

    sending.send('.\r\n');
    assert.match((await sending.readReply()).raw, /^250 2\.0\.0 /);
    assert.match((await sending.readReply()).raw, /^421 4\.3\.2 /);
    await sending.closed;
    await stopping;
    assert.ok(t.logs.some((l) => l.msg === 'stopped'));
  });
});

describe('postern serve as a process', () => {
  const postern = path.join(repoRoot, 'bin', 'postern.js');

  interface Run {
    readonly exit: Promise<{ code: number | null; stdout: string; stderr: string }>;
    readonly child: ReturnType<typeof spawn>;
    /** What the child has written so far. */
    output(): { stdout: string; stderr: string };
  }

  function run(args: string[]): Run {
    const child = spawn(process.execPath, [postern, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      child.on('close', (code) => resolve({ code, stdout, stderr })),
    );
    return { exit, child, output: () => ({ stdout, stderr }) };
  }

  /** Nothing bound on a real port (25, 9425...) that another test or server may hold. */
  const NO_LISTENERS = ['[listen]', 'mx = ["127.0.0.1:0"]', 'submission = []', 'submissions = []', 'pop3 = []', 'pop3s = []', 'http = []', 'https = []', 'metrics = []'];

  function writeConfig(dir: string, lines: string[]): string {
    const file = path.join(dir, 'postern.toml');
    fs.writeFileSync(file, [`data_dir = "${dir}"`, 'user = ""', 'hostname = "mx.example.test"', ...lines, ''].join('\n'));
    return file;
  }

  test('a port in use: exit 1 and one line on stderr', async () => {
    const dir = tempDir();
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => void busy.close());
    const port = (busy.address() as net.AddressInfo).port;
    const file = writeConfig(dir, ['[listen]', `mx = ["127.0.0.1:${port}"]`, 'submission = ["127.0.0.1:0"]', 'submissions = ["127.0.0.1:0"]', 'pop3 = []', 'pop3s = []', 'http = []', 'https = []', 'metrics = []']);
    const { code, stderr } = await run(['serve', '--config', file]).exit;
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `postern: cannot listen on 127.0.0.1:${port}: address already in use (another server running? change [listen] mx in the config)\n`,
    );
  });

  test('a missing certificate: exit 1 and one line on stderr', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, [...NO_LISTENERS, '[tls]', `cert = "${dir}/missing.pem"`, `key = "${dir}/missing.key"`]);
    const { code, stderr } = await run(['serve', '--config', file]).exit;
    assert.equal(code, 1);
    assert.equal(stderr.split('\n').length, 2, stderr);
    assert.match(stderr, /^postern: .*tls\.cert.*missing\.pem/);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  test('a missing [relay] tls_ca_file: exit 1 and one line on stderr naming it', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, [...NO_LISTENERS, '[relay]', `tls_ca_file = "${dir}/missing-ca.pem"`]);
    const { code, stderr } = await run(['serve', '--config', file]).exit;
    assert.equal(code, 1);
    assert.equal(stderr.split('\n').length, 2, stderr);
    assert.match(stderr, /^postern: cannot read \[relay\] tls_ca_file ".*missing-ca\.pem"/);
  });

  test('serves, reloads on SIGHUP, and stops on SIGTERM with exit code 0', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, ['[listen]', 'mx = ["127.0.0.1:0"]', 'submission = ["127.0.0.1:0"]', 'submissions = ["127.0.0.1:0"]', 'pop3 = []', 'pop3s = []', 'http = []', 'https = []', 'metrics = []']);
    const { exit, child, output } = run(['serve', '--config', file]);
    const listening = await eventually(() => {
      for (const line of output().stdout.split('\n')) {
        if (line.includes('"listening"')) return JSON.parse(line) as { listeners: { kind: string; port: number }[] };
      }
      return undefined;
    }, 'the listening line');
    const mx = listening.listeners.find((l) => l.kind === 'mx');
    assert.ok(mx);
    const c = await connect(mx.port);
    assert.match((await c.readReply()).raw, /^220 mx\.example\.test /);
    await c.command('QUIT');
    await c.closed;

    child.kill('SIGHUP');
    await eventually(() => (output().stdout.includes('"reloaded"') ? true : undefined), 'the reloaded line');
    child.kill('SIGTERM');
    const { code, stdout, stderr } = await exit;
    assert.equal(code, 0, stderr);
    assert.match(stdout, /"msg":"stopped"/);
    assert.match(stderr, /^Postern is listening: mx 127\.0\.0\.1:\d+, submission 127\.0\.0\.1:\d+, submissions 127\.0\.0\.1:\d+\n/);
    for (const line of stdout.trim().split('\n')) JSON.parse(line);
  });
});
