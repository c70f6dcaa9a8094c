// The AUTH row of `npm run bench`: whole submission sessions over implicit TLS (RFC 8314), each
// connect, full handshake, EHLO, AUTH PLAIN, one 1 KiB message, QUIT (bench/auth-sessions.ts),
// against Postern's submissions listener and against Postfix with Dovecot as its SASL server:
//   - Postfix: an smtpd listener with smtpd_tls_wrappermode = yes, smtpd_sasl_type = dovecot,
//     only authenticated clients may send (test/support/postfix.ts, `dovecotSasl`), and the
//     message goes through Postfix's queue (cleanup fsyncs the queue file before the 250) to
//     virtual(8), which delivers it into a Maildir;
//   - Dovecot: only its auth service, an SQLite passdb verified by its auth workers
//     (test/support/dovecot.ts, startSasl);
//   - Postern: its spool (fsync before the 250), then delivery into the recipient's Maildir.
// All present the same certificate (EC P-256), are counted only once the message is in the
// Maildir, and run the same clients, round after round, taking turns in a rotating order.
//
// A memory-hard password hash costs far more than the rest of a session, and the two sides pay
// it differently: Postern verifies its scrypt hash once per account and password, then answers
// from its verified-password cache (an HMAC); Dovecot verifies the passdb's hash on every login
// (its auth cache would keep the hash it looked up, not the verification). So Postfix + Dovecot
// runs twice: with ARGON2I, the memory-hard scheme of Postern's class (the headline), and with
// SSHA512, one salted SHA-512, about what Postern's cache hit costs: the session without the hash.

import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'smol-toml';
import { hashPassword, verifyPassword } from '../src/auth/password.js';
import { runTool } from '../test/support/external-tool.js';
import { TestDovecot } from '../test/support/dovecot.js';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { freePort, TestPostfix } from '../test/support/postfix.js';
import { makeCertificate, writeCertificate, type TestCertificate } from '../test/support/test-certificate.js';
import { runAuthSessions, waitUntilAccepting } from './auth-sessions.js';
import { drain, formatRatio, median, ratioSpread, type Contender } from './contender.js';
import { processTreeCpuMs } from './process-cpu.js';

const DOMAIN = 'bench-auth.test';
const SENDER = `sender@${DOMAIN}`;
const RECIPIENT = `inbox@${DOMAIN}`;
const PASSWORD = 'bench password, not secret';
const CLIENTS = [10, 50] as const;
/** How long each contender runs per round and client count. */
const ROW_MS = 4_000;
const ROUNDS = 3;
/** Verifications measured per side for the hash-cost line. */
const HASH_SAMPLES = 5;

/** What the row started, for the caller's cleanup whatever happens. */
export interface AuthRowStarted {
  postern?: PosternInstance;
  server?: PosternProcess;
  readonly dovecots: TestDovecot[];
  readonly postfixes: TestPostfix[];
}

/** The contenders, in the order of a round's first turn. */
const NAMES = ['postern', 'postfix', 'postfix-ssha'] as const;
type Name = (typeof NAMES)[number];

/** A contender of this row: the Maildir side of contender.ts, and the CPU its processes have used. */
interface AuthContender extends Contender {
  readonly name: Name;
  cpuMs(): number;
}

interface AuthRow {
  readonly clients: number;
  /** Sessions per second of each contender, one figure per round. */
  readonly rates: Record<Name, number[]>;
  /** Milliseconds of server CPU per accepted session (every process of the contender), one per round. */
  readonly cpu: Record<Name, number[]>;
  /** Sessions turned away with a 4xx, over all rounds (not counted in the rates). */
  readonly tempFailed: Record<Name, number>;
}

export interface AuthRowsResult {
  readonly rows: readonly AuthRow[];
  /** CPU milliseconds of one password verification, each side's own scheme. */
  readonly posternHashMs: number;
  readonly dovecotHashMs: number;
}

/** Why this machine cannot run the row (undefined: it can). */
export function authRowUnavailable(): string | undefined {
  return TestPostfix.available() ?? TestDovecot.saslAvailable();
}

export async function measureAuthRows(scale: number, started: AuthRowStarted): Promise<AuthRowsResult> {
  const certificate = await makeCertificate('bench-auth.localdomain');
  const contenders = [
    await startPostern(started, certificate),
    await startPostfix(started, certificate, 'ARGON2I'),
    await startPostfix(started, certificate, 'SSHA512'),
  ];

  const durationMs = Math.max(1_000, Math.round(ROW_MS * scale));
  const run = async (c: AuthContender, clients: number, ms: number): Promise<{ rate: number; cpuMs: number; tempFailed: number }> => {
    const cpuBefore = c.cpuMs();
    const { sessions, tempFailed, seconds } = await runAuthSessions({ port: c.port, clients, durationMs: ms, user: SENDER, password: PASSWORD, recipient: RECIPIENT });
    // Until the last delivery: what a session costs includes its message reaching the Maildir.
    await drain(c, sessions);
    return { rate: sessions / seconds, cpuMs: (c.cpuMs() - cpuBefore) / sessions, tempFailed };
  };

  log("warming up the AUTH row (Postern's first login of the account costs its scrypt; Postfix spawns its smtpd processes)");
  for (const c of contenders) await run(c, 10, 1_000);

  const rows: AuthRow[] = CLIENTS.map((clients) => ({
    clients,
    rates: { postern: [], postfix: [], 'postfix-ssha': [] },
    cpu: { postern: [], postfix: [], 'postfix-ssha': [] },
    tempFailed: { postern: 0, postfix: 0, 'postfix-ssha': 0 },
  }));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate who goes first, so no contender always runs right after another's deliveries.
    const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]!);
    for (const row of rows) {
      for (const c of order) {
        const { rate, cpuMs, tempFailed } = await run(c, row.clients, durationMs);
        row.rates[c.name].push(rate);
        row.cpu[c.name].push(cpuMs);
        row.tempFailed[c.name] += tempFailed;
      }
    }
  }
  return { rows, posternHashMs: await posternHashMs(), dovecotHashMs: await dovecotHashMs() };
}

export function printAuthRows(result: AuthRowsResult): void {
  console.log('');
  console.log(`AUTH PLAIN sessions/s over implicit TLS, Postern against Postfix + Dovecot SASL, median of ${ROUNDS} interleaved rounds:`);
  console.log('  each session: connect, full TLS handshake (EC P-256 for all), EHLO, AUTH PLAIN, one 1 KiB message, QUIT;');
  console.log('  counted once in the Maildir (Postfix: queue file fsynced, then virtual(8); Postern: spool fsynced, then delivery)');
  console.log(
    `  CPU of one password verification: Postern scrypt (N=2^15, r=8, p=1) ${result.posternHashMs.toFixed(0)} ms, ` +
      `Dovecot ARGON2I (m=32 MiB, t=4) ${result.dovecotHashMs.toFixed(0)} ms`,
  );
  console.log("  Postern verifies once per account, then hits its verified-password cache; Dovecot verifies every login;");
  console.log('  postfix = Postfix + Dovecot with ARGON2I; postfix_ssha = the same with SSHA512 (no memory-hard hash)');
  console.log("  ratios are Postern's, [lowest,highest] over the rounds");
  const widths = [8, 8, 13, 8, 20, 20];
  const head = ['clients', 'postfix', 'postfix_ssha', 'postern', 'postern/postfix', 'postern/ssha'];
  console.log('sessions/s:');
  console.log(head.map((c, i) => c.padStart(widths[i]!)).join('  '));
  const misses: number[] = [];
  for (const { clients, rates } of result.rows) {
    const [postern, argon, ssha] = NAMES.map((n) => median(rates[n]));
    if (postern! < argon!) misses.push(clients);
    const ratio = (peer: Name, value: number): string => formatRatio(postern! / value, ratioSpread(rates.postern, rates[peer]));
    const cells = [String(clients), argon!.toFixed(1), ssha!.toFixed(1), postern!.toFixed(1), ratio('postfix', argon!), ratio('postfix-ssha', ssha!)];
    console.log(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
  }
  // CPU per session: a peer's / Postern's, so that above 1 means Postern spends less.
  console.log("server CPU ms per accepted session (every process of each side, until the message is in the Maildir); ratios peer/Postern:");
  console.log(head.map((c, i) => (i < 4 ? c : c.replace('postern/', '') + '/postern').padStart(widths[i]!)).join('  '));
  for (const { clients, cpu } of result.rows) {
    const [postern, argon, ssha] = NAMES.map((n) => median(cpu[n]));
    const ratio = (peer: Name, value: number): string => formatRatio(value / postern!, ratioSpread(cpu[peer], cpu.postern));
    const cells = [String(clients), argon!.toFixed(2), ssha!.toFixed(2), postern!.toFixed(2), ratio('postfix', argon!), ratio('postfix-ssha', ssha!)];
    console.log(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
  }
  for (const { clients, tempFailed } of result.rows) {
    const refused = NAMES.filter((n) => tempFailed[n] > 0).map((n) => `${n} ${tempFailed[n]}`);
    if (refused.length > 0) console.log(`sessions refused with a 4xx at ${clients} clients (not in the rates): ${refused.join(', ')}`);
  }
  console.log(misses.length === 0 ? 'AUTH target met: yes (>= Postfix + Dovecot SASL with ARGON2I)' : `AUTH target met: no (short at ${misses.join(', ')} clients)`);
}

/** Postern with a submissions listener, the row's certificate, and no per-account quotas. */
async function startPostern(started: AuthRowStarted, certificate: TestCertificate): Promise<AuthContender> {
  log('starting Postern for the AUTH row');
  const postern = new PosternInstance({
    hostname: 'bench-auth.localdomain',
    // A fixed MX port: at log level warn there is no "listening" line to learn the ports from.
    mxPort: await freePort(),
    logLevel: 'warn',
    limits: { max_connections_per_ip: 1000 },
  });
  started.postern = postern;
  const port = await freePort();
  const config = parse(readFileSync(postern.configPath, 'utf8')) as { listen: Record<string, string[]> };
  config.listen.submissions = [`127.0.0.1:${port}`];
  // One account sends every message: lift the per-account hourly and daily limits.
  const submission = { max_messages_per_hour: 0, max_recipients_per_day: 0 };
  const tls = writeCertificate(postern.root, 'auth', certificate);
  writeFileSync(postern.configPath, stringify({ ...config, submission, tls }));
  await postern.cliOk(['domain', 'add', DOMAIN]);
  await postern.addUser(SENDER, PASSWORD);
  await postern.addUser(RECIPIENT, PASSWORD);
  const server = (started.server = await postern.start());
  await waitUntilAccepting(port);
  return { name: 'postern', port, maildirNew: postern.maildirNew(RECIPIENT), queued: () => 0, cpuMs: () => processTreeCpuMs([server.pid]) };
}

/** Dovecot's auth service with this password scheme, then a Postfix smtps listener asking it. */
async function startPostfix(started: AuthRowStarted, certificate: TestCertificate, scheme: 'ARGON2I' | 'SSHA512'): Promise<AuthContender> {
  log(`starting a private Dovecot (auth only, ${scheme}) and a private Postfix for the AUTH row`);
  const dovecot = await TestDovecot.startSasl([{ username: SENDER, password: PASSWORD }], 'postfix', scheme);
  started.dovecots.push(dovecot);
  const postfix = await TestPostfix.start({
    hostname: `bench-auth-${scheme.toLowerCase()}.localdomain`,
    domains: [DOMAIN],
    tls: certificate,
    smtps: true,
    dovecotSasl: dovecot.saslSocket,
  });
  started.postfixes.push(postfix);
  const name: Name = scheme === 'ARGON2I' ? 'postfix' : 'postfix-ssha';
  // Postfix's master and its daemons, Dovecot's master and its services (auth above all).
  const roots = [postfix.masterPid(), dovecot.pid].filter((pid): pid is number => pid !== undefined);
  return { name, port: postfix.port, maildirNew: postfix.maildirNew, queued: () => postfix.queued(), cpuMs: () => processTreeCpuMs(roots) };
}

/** CPU of this process and the children it has reaped (doveadm), in ms. */
const ownCpuMs = (): number => processTreeCpuMs([process.pid]);

/** CPU ms of one verification of Postern's own hash of the row's password (scrypt runs on libuv's threads, counted too). */
async function posternHashMs(): Promise<number> {
  const hash = await hashPassword(PASSWORD);
  const before = ownCpuMs();
  for (let i = 0; i < HASH_SAMPLES; i++) {
    if (!(await verifyPassword(PASSWORD, hash))) throw new Error('Postern does not verify its own hash');
  }
  return (ownCpuMs() - before) / HASH_SAMPLES;
}

/** CPU ms of one verification of Dovecot's hash: `doveadm pw -t`, less the same run against a {PLAIN} one. */
async function dovecotHashMs(): Promise<number> {
  const hashed = await runTool('/usr/bin/doveadm', ['pw', '-s', 'ARGON2I', '-p', PASSWORD]);
  const cpuOf = async (hash: string): Promise<number> => {
    const before = ownCpuMs();
    for (let i = 0; i < HASH_SAMPLES; i++) {
      const check = await runTool('/usr/bin/doveadm', ['pw', '-t', hash, '-p', PASSWORD]);
      if (check.code !== 0) throw new Error(`doveadm pw -t failed: ${check.stderr.trim()}`);
    }
    return (ownCpuMs() - before) / HASH_SAMPLES;
  };
  return Math.max(0, (await cpuOf(hashed.stdout.trim())) - (await cpuOf(`{PLAIN}${PASSWORD}`)));
}

function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}
