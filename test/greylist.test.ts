// Greylisting end to end: the server in this process (so the test can hold the greylist's clock
// and walk it past the delay instead of sleeping), real sockets on loopback, nodemailer and
// Python's smtplib as the sending MTAs, the test DNS server answering the allowlist zone and the
// SPF records. Clients connect from their own 127.0.0.0/8 addresses, and trusted_networks is
// empty so loopback counts as a stranger. Runs as root too: the server then switches this whole
// process to "nobody", so the temp dir is mode 0755 and is itself the data_dir.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { configSchema, type Config } from '../src/config/schema.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { TestDnsServer } from './support/dns-server.js';
import { requireTool, runTool } from './support/external-tool.js';
import { eventually } from './support/test-server.js';

const ALICE = 'alice@example.test';
const DELAY_S = 300;

interface Running {
  readonly server: RunningServer;
  readonly logs: Record<string, unknown>[];
  readonly port: number;
}

let dns: TestDnsServer;
const dirs: string[] = [];
const running: RunningServer[] = [];
/** The greylist's clock, shared by every server this file starts (a restart keeps the time). */
let clock = Date.now();

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-greylist-'));
  fs.chmodSync(dir, 0o755);
  dirs.push(dir);
  return dir;
}

async function addMailbox(dir: string): Promise<void> {
  const store = openSqliteStore(path.join(dir, 'postern.db'));
  await store.addDomain('example.test');
  await store.addUser(ALICE, { passwordHash: '$scrypt$ln=15,r=8,p=1$AAAA$AAAA' });
  await store.close();
}

function config(dir: string, extra: Record<string, unknown>): Config {
  return configSchema.parse({
    hostname: 'mx.example.test',
    data_dir: dir,
    user: '',
    listen: { mx: ['127.0.0.1:0'], submission: [], submissions: [], pop3: [], pop3s: [], http: [], https: [], metrics: [] },
    relay: { dns_servers: [dns.address], dns_cache_seconds: 0 },
    ...extra,
  });
}

const GREYLIST = {
  // Loopback stands for the Internet here; by default it is trusted, and never greylisted.
  limits: { trusted_networks: [] },
  screen: { dnsbl_sites: ['wl.test*-5'], dnsbl_timeout: 2 },
  greylist: { enabled: true, spf_allowlist: ['bank.test'] },
};

async function start(dir: string, extra: Record<string, unknown> = GREYLIST): Promise<Running> {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const server = await startServer(config(dir, extra), { logger, now: () => clock });
  running.push(server);
  const mx = server.listeners.find((l) => l.kind === 'mx');
  assert.ok(mx);
  return { server, logs, port: mx.port };
}

interface Attempt {
  readonly accepted: boolean;
  readonly code?: number | undefined;
  readonly response?: string | undefined;
}

/** One delivery attempt by nodemailer, as an MTA makes it: EHLO, MAIL, RCPT, DATA. */
async function sendWithNodemailer(port: number, from: string, localAddress: string, subject: string): Promise<Attempt> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    localAddress,
    name: 'mta.remote.test',
    connectionTimeout: 15_000,
  });
  try {
    const info = await transport.sendMail({ from, to: ALICE, subject, text: 'greylist test' });
    return { accepted: info.accepted.includes(ALICE) };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string };
    return { accepted: false, code: e.responseCode, response: e.response };
  } finally {
    transport.close();
  }
}

/** One delivery attempt by Python's smtplib, bound to `localAddress`. */
const SMTPLIB_SCRIPT = `
import json, smtplib, sys
port, source, sender, rcpt, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
msg = "From: %s\\r\\nTo: %s\\r\\nSubject: %s\\r\\n\\r\\ngreylist test\\r\\n" % (sender, rcpt, subject)
try:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="mta.remote.test", source_address=(source, 0), timeout=30) as s:
        s.sendmail(sender, [rcpt], msg)
    print(json.dumps({"accepted": True}))
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients[rcpt]
    print(json.dumps({"accepted": False, "code": code, "response": "%d %s" % (code, text.decode())}))
`;

async function sendWithSmtplib(port: number, from: string, localAddress: string, subject: string): Promise<Attempt> {
  requireTool('python3', 'python3');
  const run = await runTool('python3', ['-c', SMTPLIB_SCRIPT, String(port), localAddress, from, ALICE, subject]);
  assert.equal(run.code, 0, `python3 failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Attempt;
}

/** The delivered message with this subject, once the queue has written it to alice's Maildir. */
function delivered(dir: string, subject: string): Promise<string> {
  const newDir = path.join(dir, 'mail', 'example.test', 'alice', 'new');
  return eventually(() => {
    if (!fs.existsSync(newDir)) return undefined;
    return fs.readdirSync(newDir).find((f) => fs.readFileSync(path.join(newDir, f), 'utf8').includes(`Subject: ${subject}`));
  }, `"${subject}" in alice's Maildir`);
}

const greylistLine = (logs: Record<string, unknown>[], sender: string): Record<string, unknown> | undefined =>
  logs.findLast((l) => l.msg === 'greylist' && l.sender === sender);

function assertGreylisted(a: Attempt, seconds: number): void {
  assert.equal(a.accepted, false, 'greylisted');
  assert.equal(a.code, 451, a.response);
  assert.match(a.response ?? '', new RegExp(`^451 4\\.7\\.1 <${ALICE}>: Greylisted, try again in ${seconds} seconds$`));
}

before(async () => {
  dns = await TestDnsServer.start();
  // The allowlist vouches for 127.0.0.3 only; bank.test's SPF record names 127.0.0.5 only.
  dns.set('3.0.0.127.wl.test', [{ type: 'A', address: '127.0.0.2' }]);
  dns.set('bank.test', [{ type: 'TXT', strings: ['v=spf1 ip4:127.0.0.5 -all'] }]);
});

after(async () => {
  for (const s of running.splice(0).reverse()) await s.stop();
  await dns.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('[greylist]', () => {
  let dir: string;
  let mx: Running;

  before(async () => {
    dir = tempDir();
    await addMailbox(dir);
    mx = await start(dir);
  });

  test('nodemailer: the first attempt gets 451 4.7.1 at RCPT; after the delay the retry is delivered', async () => {
    const sender = 'bob@remote.test';
    assertGreylisted(await sendWithNodemailer(mx.port, sender, '127.0.0.2', 'first'), DELAY_S);
    assert.equal(greylistLine(mx.logs, sender)?.reason, 'new');
    clock += 120_000;
    assertGreylisted(await sendWithNodemailer(mx.port, sender, '127.0.0.2', 'early'), DELAY_S - 120);
    assert.equal(greylistLine(mx.logs, sender)?.reason, 'early retry');
    clock += (DELAY_S - 120) * 1000;
    assert.deepEqual(await sendWithNodemailer(mx.port, sender, '127.0.0.2', 'retried'), { accepted: true });
    assert.equal(greylistLine(mx.logs, sender)?.reason, 'retried after the delay');
    await delivered(dir, 'retried');
    // The same triplet again passes at once; from another /24 it is a new triplet.
    assert.deepEqual(await sendWithNodemailer(mx.port, sender, '127.0.0.2', 'known'), { accepted: true });
    assert.equal(greylistLine(mx.logs, sender)?.reason, 'triplet known');
    assertGreylisted(await sendWithNodemailer(mx.port, sender, '127.0.1.2', 'other net'), DELAY_S);
  });

  test('a client the DNS allowlist vouches for is not greylisted', async () => {
    const sender = 'carol@remote.test';
    assert.deepEqual(await sendWithNodemailer(mx.port, sender, '127.0.0.3', 'dnswl'), { accepted: true });
    assert.equal(greylistLine(mx.logs, sender)?.reason, 'dnswl');
    await delivered(dir, 'dnswl');
  });

  test('a sender of an allowlisted domain is not greylisted when SPF passes, and is when it does not', async () => {
    const sender = 'statements@bank.test';
    assert.deepEqual(await sendWithSmtplib(mx.port, sender, '127.0.0.5', 'spf pass'), { accepted: true });
    assert.equal(greylistLine(mx.logs, sender)?.reason, 'spf pass');
    await delivered(dir, 'spf pass');
    // The same sender from an address bank.test's SPF record does not name: forged, so it waits.
    assertGreylisted(await sendWithSmtplib(mx.port, sender, '127.0.2.6', 'forged'), DELAY_S);
  });

  test('the greylist survives a restart: the retry after it gets the seconds left, then passes', async () => {
    const sender = 'dave@remote.test';
    assertGreylisted(await sendWithSmtplib(mx.port, sender, '127.0.3.4', 'before restart'), DELAY_S);
    await mx.server.stop();
    mx = await start(dir);
    clock += 100_000;
    assertGreylisted(await sendWithSmtplib(mx.port, sender, '127.0.3.4', 'after restart'), DELAY_S - 100);
    clock += (DELAY_S - 100) * 1000;
    assert.deepEqual(await sendWithSmtplib(mx.port, sender, '127.0.3.4', 'after restart, retried'), { accepted: true });
    await delivered(dir, 'after restart, retried');
  });

  test('an unknown user still gets 550 at once, never a 451', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: mx.port, secure: false, ignoreTLS: true, localAddress: '127.0.4.4' });
    try {
      await assert.rejects(
        transport.sendMail({ from: 'erin@remote.test', to: 'ghost@example.test', subject: 'unknown', text: 'x' }),
        (err: { responseCode?: number; response?: string }) => err.responseCode === 550 && /5\.1\.1/.test(err.response ?? ''),
      );
    } finally {
      transport.close();
    }
    assert.equal(greylistLine(mx.logs, 'erin@remote.test'), undefined);
  });
});

describe('[greylist] off, or trusted', () => {
  test('off by default: a first attempt from a stranger is delivered', async () => {
    const dir = tempDir();
    await addMailbox(dir);
    const mx = await start(dir, { limits: { trusted_networks: [] } });
    assert.deepEqual(await sendWithNodemailer(mx.port, 'frank@remote.test', '127.0.5.2', 'off by default'), { accepted: true });
    await delivered(dir, 'off by default');
    assert.equal(greylistLine(mx.logs, 'frank@remote.test'), undefined);
    await mx.server.stop();
  });

  test('on, with the default trusted_networks (loopback): a local client is not greylisted', async () => {
    const dir = tempDir();
    await addMailbox(dir);
    const mx = await start(dir, { greylist: { enabled: true } });
    assert.deepEqual(await sendWithNodemailer(mx.port, 'gina@remote.test', '127.0.6.2', 'trusted'), { accepted: true });
    await delivered(dir, 'trusted');
    assert.equal(greylistLine(mx.logs, 'gina@remote.test')?.reason, 'trusted network');
    await mx.server.stop();
  });
});
