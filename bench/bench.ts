// `npm run bench`: Postern against Postfix, side by side on loopback, both driven by Postfix's
// smtp-source, both delivering every message into a Maildir with durable queueing.
//
// Needs: root (Postfix's master starts as root; Postern drops to "nobody"), the Debian
// `postfix` package (postfix, postconf, smtp-source; `.ci/run` installs it) and a built tree
// (`npm run bench` compiles first). Run it as root on a fresh clone after `.ci/run`'s apt step.
// BENCH_SCALE=0.1 runs a tenth of the messages, for a quick look. BENCH_ONLY=smtp runs only the
// main table (Postfix, nodemailer's smtp-server with an fsync per message, Postern); BENCH_ONLY=auth runs only the
// AUTH row (bench/auth-row.ts: AUTH PLAIN sessions over implicit TLS, Postern against Postfix with
// Dovecot SASL; root, postfix, and Dovecot's dovecot-core and dovecot-sqlite);
// BENCH_ONLY=relay only the end-to-end relay rows (submission -> relay -> sink, bench/relay-row.ts:
// Postfix's smtp-sink, then a Postfix delivering into a Maildir);
// BENCH_ONLY=pop3 only the POP3 rows against Dovecot (bench/pop3-row.ts; root and Dovecot's
// dovecot-pop3d, dovecot-imapd, dovecot-lmtpd and dovecot-sqlite packages); BENCH_ONLY=checks
// only the inbound-checks row (bench/checks-row.ts: Postfix, Postern with checks off and on);
// BENCH_ONLY=idle only the memory per idle session, plain and TLS (bench/idle-row.ts).
// BENCH_WORKERS=N adds to the main table a second Postern with `workers = N` (the first keeps the
// default) and the ratio of the two, measured in the same interleaved rounds. BENCH_ROWS runs only
// the main table's rows it names, as the table prints them, comma-separated
// ("1/1KiB/reused,1/100KiB/one-conn"): for looking at a few rows; the verdict then covers those.
//
// It prints numbers and whether the targets are met; it does not fail on them. It exits
// non-zero only if something broke (a server did not start, smtp-source failed, mail was lost).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestDovecot } from '../test/support/dovecot.js';
import { PosternInstance, type InstanceOptions, type PosternProcess } from '../test/support/postern-process.js';
import { optionalPositiveFromEnv } from '../test/support/env-number.js';
import { freePort, TestPostfix } from '../test/support/postfix.js';
import { authRowUnavailable, measureAuthRows, printAuthRows, type AuthRowStarted } from './auth-row.js';
import { measureChecksRow, printChecksRow, type ChecksRowStarted } from './checks-row.js';
import { formatRatio, measure, median, ratioSpread, type Contender, type Row, type Spread } from './contender.js';
import { FsyncPeer } from './fsync-peer-process.js';
import { measureIdleRow, printIdleRow, type IdleRowStarted } from './idle-row.js';
import { fileCreateRate, fsyncRate } from './fsync-rate.js';
import { measurePop3Rows, printPop3Rows, type Pop3RowsStarted } from './pop3-row.js';
import { measureRelayRow, printRelayRows, type RelayRowResult, type RelayRowStarted, type SinkKind, stopRelayRow } from './relay-row.js';
import { smtpSourceAvailable } from './smtp-source.js';

/** The domain both servers deliver into one Maildir. */
const POSTFIX_DOMAIN = 'bench.test';
const RECIPIENT = `bench@${POSTFIX_DOMAIN}`;
const KIB = 1024;


/** One row: each contender's median msgs/s, and Postern's ratios to each peer, round by round. */
interface Result {
  readonly row: Row;
  readonly postfix: number;
  readonly peer: number;
  readonly postern: number;
  readonly overPostfix: Spread;
  readonly overPeer: Spread;
  /** BENCH_WORKERS: the worker-mode Postern's median, and its ratio to the default Postern. */
  readonly workers?: { readonly rate: number; readonly overDefault: Spread };
}

/** Rounds per row: each contender runs this many times, interleaved with the others. */
const ROUNDS = 3;

const scale = Number(process.env.BENCH_SCALE ?? '1');
/** BENCH_WORKERS, read first: a bad value stops the bench before it has started anything. */
const BENCH_WORKERS = optionalPositiveFromEnv('BENCH_WORKERS', 2);

/** The row's name in the verdict and in BENCH_ROWS: "100/1KiB/reused". */
function rowName(row: Row): string {
  return `${row.sessions}/${row.size / KIB}KiB/${row.reuse ? 'reused' : 'one-conn'}`;
}

/** BENCH_ROWS, read first: a name that is no row stops the bench before it has started anything. */
const BENCH_ROWS = selectedRows(process.env.BENCH_ROWS);

function selectedRows(spec: string | undefined): Row[] {
  const all = allRows();
  if (spec === undefined || spec.trim() === '') return all;
  const names = spec.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => !all.some((row) => rowName(row) === n));
  if (unknown.length > 0) {
    console.error(`bench: BENCH_ROWS names no row "${unknown.join('", "')}"; rows are ${all.map(rowName).join(', ')}`);
    process.exit(2);
  }
  return all.filter((row) => names.includes(rowName(row)));
}

function allRows(): Row[] {
  const counts: Record<string, Record<number, number>> = {
    '1-reuse': { 1: 1500, 10: 3000, 100: 3000 },
    '1-once': { 1: 600, 10: 1500, 100: 1500 },
    '100-reuse': { 1: 400, 10: 600, 100: 800 },
    '100-once': { 1: 300, 10: 500, 100: 600 },
  };
  const result: Row[] = [];
  for (const sizeKib of [1, 100]) {
    for (const reuse of [true, false]) {
      for (const sessions of [1, 10, 100]) {
        const base = counts[`${sizeKib}-${reuse ? 'reuse' : 'once'}`]![sessions]!;
        // At least two messages per session, so every session does some work.
        const messages = Math.max(sessions * 2, Math.round(base * scale));
        result.push({ sessions, size: sizeKib * KIB, reuse, messages });
      }
    }
  }
  return result;
}

/** What main() started, for the cleanup that runs however it ends. */
interface Started {
  postfix?: TestPostfix;
  peer?: FsyncPeer;
  postern?: PosternInstance;
  server?: PosternProcess;
  workersPostern?: PosternInstance;
  workersServer?: PosternProcess;
  auth?: AuthRowStarted;
  /** One per end-to-end row (per sink). */
  relays: RelayRowStarted[];
  pop3?: Pop3RowsStarted;
  checks?: ChecksRowStarted;
  idle?: IdleRowStarted;
  /** The file-create probe's files: removed with the rest, after every row. */
  createDir?: string;
}

async function main(): Promise<number> {
  // BENCH_ONLY=auth: just the AUTH row (needs root, Postfix, dovecot-core and dovecot-sqlite).
  const authOnly = process.env.BENCH_ONLY === 'auth';
  // BENCH_ONLY=relay: just the end-to-end relay row (needs root and Postfix).
  const relayOnly = process.env.BENCH_ONLY === 'relay';
  // BENCH_ONLY=pop3: just the POP3 rows against Dovecot (needs root and Dovecot).
  const pop3Only = process.env.BENCH_ONLY === 'pop3';
  // BENCH_ONLY=checks: just the inbound-checks row (needs root and Postfix).
  const checksOnly = process.env.BENCH_ONLY === 'checks';
  // BENCH_ONLY=smtp: just the main table (Postfix, the fsync peer, Postern).
  const smtpOnly = process.env.BENCH_ONLY === 'smtp';
  // BENCH_ONLY=idle: just the idle-sessions row (memory per greeted, silent connection).
  const idleOnly = process.env.BENCH_ONLY === 'idle';
  const only = authOnly || relayOnly || pop3Only || checksOnly || smtpOnly || idleOnly;
  if (process.getuid?.() !== 0) {
    console.error('bench: run as root (a private Postfix instance needs it), e.g. sudo npm run bench');
    return 1;
  }
  if (!authOnly && !smtpSourceAvailable()) {
    console.error('bench: smtp-source not found; install the postfix package (see .ci/run)');
    return 1;
  }
  const noAuthRow = authRowUnavailable();
  if ((authOnly || !only) && noAuthRow !== undefined) {
    console.error(`bench: the AUTH row needs Postfix and Dovecot: ${noAuthRow}`);
    return 1;
  }
  const noDovecot = TestDovecot.available({ pop3s: true });
  if ((pop3Only || !only) && noDovecot !== undefined) {
    console.error(`bench: the POP3 rows need Dovecot: ${noDovecot}`);
    return 1;
  }

  const started: Started = { relays: [] };
  let cleaning: Promise<void> | undefined;
  // Runs once, whether main finishes, fails, or a signal arrives mid-run.
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await started.postfix?.stop();
      await started.peer?.stop();
      for (const [server, instance] of [
        [started.server, started.postern],
        [started.workersServer, started.workersPostern],
      ] as const) {
        await server?.stop().catch(() => server?.kill());
        await instance?.dispose();
      }
      for (const postfix of started.auth?.postfixes ?? []) await postfix.stop();
      for (const dovecot of started.auth?.dovecots ?? []) await dovecot.stop();
      await started.auth?.server?.stop().catch(() => started.auth?.server?.kill());
      await started.auth?.postern?.dispose();
      for (const relay of started.relays) await stopRelayRow(relay);
      await started.pop3?.dovecot?.stop();
      await started.pop3?.server?.stop().catch(() => started.pop3?.server?.kill());
      await started.pop3?.postern?.dispose();
      const checks = started.checks;
      await checks?.postfix?.stop();
      for (const side of [checks?.off, checks?.on]) {
        await side?.server?.stop().catch(() => side.server?.kill());
        await side?.postern.dispose();
      }
      await checks?.dns?.close();
      await started.idle?.server?.stop().catch(() => started.idle?.server?.kill());
      await started.idle?.postern?.dispose();
      if (started.createDir) rmSync(started.createDir, { recursive: true, force: true });
    })());
  const onSignal = (): void => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    if (!only || smtpOnly) await compareWithPeers(started);
    if (!only || authOnly) {
      started.auth = { dovecots: [], postfixes: [] };
      printAuthRows(await measureAuthRows(scale, started.auth));
    }
    if (!only || relayOnly) {
      const results: RelayRowResult[] = [];
      for (const sink of ['smtp-sink', 'postfix-maildir'] as const satisfies readonly SinkKind[]) {
        log(`end-to-end relay row: a Postfix relay and Postern, sink ${sink}`);
        const relay: RelayRowStarted = {};
        started.relays.push(relay);
        results.push(await measureRelayRow(scale, sink, relay));
        // Each row's processes end before the next starts: they would share the two cores.
        await stopRelayRow(relay);
        started.relays.pop();
      }
      printRelayRows(results);
    }
    if (!only || checksOnly) {
      log('inbound-checks row: Postfix, Postern with checks off, Postern with checks on');
      started.checks = {};
      printChecksRow(await measureChecksRow(scale, started.checks));
    }
    if (!only || idleOnly) {
      log(`idle-sessions row: connections greeted and left idle`);
      started.idle = {};
      printIdleRow(await measureIdleRow(scale, started.idle));
    }
    if (!only || pop3Only) {
      started.pop3 = {};
      const rows = await measurePop3Rows(scale, started.pop3);
      printPop3Rows(rows, execFileSync('/usr/sbin/dovecot', ['--version'], { encoding: 'utf8' }).trim().split(' ')[0] ?? '?');
    }
    return 0;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup();
  }
}

/**
 * The main table: Postfix, the smtp-server + fsync peer and Postern side by side, all fed by
 * smtp-source on their MX ports. Each row runs ROUNDS rounds, the contenders taking turns in an
 * order that rotates per round, so a slow spell of the disk falls on all of them.
 */
async function compareWithPeers(started: Started): Promise<void> {
  log('starting a private Postfix instance');
  const postfix = await TestPostfix.start({ hostname: 'bench-postfix.localdomain', domains: [POSTFIX_DOMAIN] });
  started.postfix = postfix;

  log('starting the smtp-server + fsync peer');
  const peer = await FsyncPeer.start();
  started.peer = peer;

  log('starting Postern');
  const postern = new PosternInstance(await mainTablePostern());
  started.postern = postern;
  const server = await startMainTablePostern(postern);
  started.server = server;

  const contenders: Contender[] = [
    { name: 'postfix', port: postfix.port, maildirNew: postfix.maildirNew, queued: () => postfix.queued() },
    { name: 'fsync-peer', port: peer.port, maildirNew: peer.maildirNew, queued: () => 0 },
    { name: 'postern', port: server.port('mx'), maildirNew: postern.maildirNew(RECIPIENT), queued: () => 0 },
  ];
  const workers = BENCH_WORKERS;
  if (workers !== undefined) {
    log(`starting a second Postern with workers = ${workers}`);
    const instance = new PosternInstance({ ...(await mainTablePostern()), workers });
    started.workersPostern = instance;
    const workersServer = await startMainTablePostern(instance);
    started.workersServer = workersServer;
    contenders.push({ name: 'postern-workers', port: workersServer.port('mx'), maildirNew: instance.maildirNew(RECIPIENT), queued: () => 0 });
  }

  // Warm-up: Postfix spawns its daemons, Node compiles its hot paths.
  log('warming up');
  for (const contender of contenders) await measure(contender, { sessions: 10, size: KIB, reuse: true, messages: 300 }, RECIPIENT);

  const fsyncBefore = fsyncRate(tmpdir());
  console.log(`disk: ${fsyncBefore.toFixed(0)} write+fsync pairs/s in ${tmpdir()} before the rows (one writer, 4 KiB)`);
  const createDir = mkdtempSync(join(tmpdir(), 'create-rate-'));
  started.createDir = createDir;
  console.log(`file system: ${fileCreateRate(createDir).toFixed(0)} file creates/s there before the rows`);
  console.log(`each row: median msgs/s of ${ROUNDS} interleaved rounds; ratios are Postern's, [lowest,highest] over the rounds`);
  printHeader(workers);
  const results: Result[] = [];
  for (const row of BENCH_ROWS) {
    const rates = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < contenders.length; i++) {
        const contender = contenders[(i + round) % contenders.length]!;
        rates.get(contender.name)!.push(await measure(contender, row, RECIPIENT));
      }
    }
    const result = resultOf(row, rates.get('postfix')!, rates.get('fsync-peer')!, rates.get('postern')!, rates.get('postern-workers'));
    results.push(result);
    printResult(result);
  }
  const fsyncAfter = fsyncRate(tmpdir());
  console.log(`disk: ${fsyncAfter.toFixed(0)} write+fsync pairs/s after the rows`);
  const afterDir = join(createDir, 'after');
  mkdirSync(afterDir);
  console.log(`file system: ${fileCreateRate(afterDir).toFixed(0)} file creates/s after the rows`);
  printVerdict(results);
  // Stopped now: the AUTH row runs alone on the machine.
  await started.workersServer?.stop();
  await server.stop();
  await peer.stop();
  await postfix.stop();
}

/** The main table's Postern: MX only, on a free port, for the one recipient. */
async function mainTablePostern(): Promise<InstanceOptions> {
  return {
    hostname: 'bench-postern.localdomain',
    mxPort: await freePort(),
    submission: false,
    // The default level, each message logged, as Postfix logs each one; into a file, as a
    // service manager would write it, so that no process of the bench reads it.
    logLevel: 'info',
    logToFile: true,
    // Like Postfix's anvil exemption for $mynetworks: 100 loopback sessions must all get in.
    limits: { max_connections_per_ip: 1000 },
  };
}

/** Creates the recipient's domain and mailbox, then starts the server. */
async function startMainTablePostern(instance: PosternInstance): Promise<PosternProcess> {
  await instance.cliOk(['domain', 'add', POSTFIX_DOMAIN]);
  await instance.addUser(RECIPIENT);
  return instance.start();
}

function resultOf(row: Row, postfix: readonly number[], peer: readonly number[], postern: readonly number[], workers?: readonly number[]): Result {
  return {
    row,
    postfix: median(postfix),
    peer: median(peer),
    postern: median(postern),
    overPostfix: ratioSpread(postern, postfix),
    overPeer: ratioSpread(postern, peer),
    ...(workers === undefined ? {} : { workers: { rate: median(workers), overDefault: ratioSpread(workers, postern) } }),
  };
}

const COLUMNS = ['sessions', 'size', 'mode', 'postfix', 'fsync_peer', 'postern', 'postern/postfix', 'postern/peer'];
const WIDTHS = [8, 7, 9, 8, 10, 8, 20, 20];
/** The BENCH_WORKERS columns: the worker-mode Postern and its ratio to the default one. */
const WORKER_WIDTHS = [10, 20];

function printHeader(workers?: number): void {
  console.log('msgs/s:');
  const extra = workers === undefined ? [] : [`postern_w${workers}`, `w${workers}/postern`].map((c, i) => c.padStart(WORKER_WIDTHS[i]!));
  console.log([...COLUMNS.map((c, i) => c.padStart(WIDTHS[i]!)), ...extra].join('  '));
}

function printResult({ row, postfix, peer, postern, overPostfix, overPeer, workers }: Result): void {
  const cells = [
    String(row.sessions),
    `${row.size / KIB}KiB`,
    row.reuse ? 'reused' : 'one-conn',
    postfix.toFixed(1),
    peer.toFixed(1),
    postern.toFixed(1),
    formatRatio(postern / postfix, overPostfix),
    formatRatio(postern / peer, overPeer),
  ];
  const extra = workers === undefined ? [] : [workers.rate.toFixed(1), formatRatio(workers.rate / postern, workers.overDefault)].map((c, i) => c.padStart(WORKER_WIDTHS[i]!));
  console.log([...cells.map((c, i) => c.padStart(WIDTHS[i]!)), ...extra].join('  '));
}

/**
 * Targets: at least the best durable peer in every row; at 100 sessions, 1 KiB, reused
 * connections, at least 5x Postfix and 2x the smtp-server + fsync peer. Judged on the medians.
 */
function printVerdict(results: readonly Result[]): void {
  const misses = results.filter(({ row, postfix, peer, postern }) => {
    const headline = row.sessions === 100 && row.size === KIB && row.reuse;
    if (headline) return postern / postfix < 5 || postern / peer < 2;
    return postern < Math.max(postfix, peer);
  });
  if (misses.length === 0) {
    console.log('targets met: yes (>= 5x Postfix and >= 2x the peer at 100 sessions 1KiB reused, >= the best peer in every other row)');
    return;
  }
  const names = misses.map(({ row }) => rowName(row));
  console.log(`targets met: no (short in ${misses.length} rows: ${names.join(', ')})`);
}

function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  },
);
