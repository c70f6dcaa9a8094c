// `npm run soak`: a real `postern serve` under a realistic mix of traffic for a long time, to
// find what only time finds: memory or descriptors that grow with every session, mail that goes
// missing once in ten thousand. It:
//
//   1. starts the server (MX, submission, submissions, POP3S, metrics; a smart host that is a
//      sink in this process) with a domain, eight POP3 mailboxes and a few aliases;
//   2. measures the peak: the mix's busy jobs (bench/soak-traffic.ts) back to back from
//      PEAK_CLIENTS clients for SOAK_PEAK_SECONDS, in jobs per second;
//   3. drives the whole mix, idle clients and wrong passwords included, for SOAK_MINUTES at half
//      that rate (open loop: jobs start on a clock, not when the last one ended), while POP3
//      clients retrieve and delete what arrives, so the mailboxes stay small as real ones do;
//   4. samples the server's RSS (/proc/PID/status VmRSS), its open descriptors (/proc/PID/fd)
//      and its queue depth (/metrics) every SOAK_SAMPLE_SECONDS;
//   5. waits until everything accepted has arrived, stops the server with SIGTERM.
//
// It passes when RSS and descriptors grew by no more than 10% (bench/soak-verdict.ts says how that
// is judged), every delivery owed for a 250 arrived (no loss, nothing delivered that was refused),
// no job failed, and the server stopped cleanly. It prints a summary and exits non-zero otherwise.
//
// Needs a built tree (`npm run soak` compiles first) and 127.0.0.2 on the loopback (Linux has
// all of 127.0.0.0/8). SOAK_MINUTES=2 is a quick check; SOAK_RATE fixes the rate (jobs/s) and
// skips the peak measurement.

import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parsePrometheusText } from '../test/support/prometheus-text.js';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { SmtpSink } from '../test/support/smtp-sink.js';
import { waitUntilAccepting } from './auth-sessions.js';
import { BenchPop3Client } from './pop3-client.js';
import { ALIASES, DOMAIN, MAILBOXES, MAX_MESSAGE_SIZE, PASSWORD, SENDER, SoakTraffic, VICTIM, type JobKind, type Outcome } from './soak-traffic.js';
import { DeliveryLedger, flatness, type Flatness, type Statistic } from './soak-verdict.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? '30');
const PEAK_SECONDS = Number(process.env.SOAK_PEAK_SECONDS ?? '20');
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? '5');
const FIXED_RATE = process.env.SOAK_RATE === undefined ? undefined : Number(process.env.SOAK_RATE);
const PEAK_CLIENTS = 16;
/** Jobs open at once, at most, during the soak: beyond this the server is not keeping up. */
const MAX_IN_FLIGHT = 400;
const DRAIN_TIMEOUT_MS = 180_000;
const TOLERANCE = 0.1;
/** Longer than the longest job (an idle client, up to 30 s): connections open reach their level. */
const WARM_UP_SECONDS = 40;

interface Sample {
  readonly at: number;
  readonly rss: number;
  readonly fds: number;
  readonly queue: number;
  /** The V8 heap in use (postern_nodejs_heap_size_used_bytes): where a JavaScript leak shows first. */
  readonly heap: number;
  readonly inFlight: number;
}

interface Started {
  sink?: SmtpSink;
  postern?: PosternInstance;
  server?: PosternProcess;
  traffic?: SoakTraffic;
}

async function main(): Promise<number> {
  for (const [name, value] of [['SOAK_MINUTES', MINUTES], ['SOAK_PEAK_SECONDS', PEAK_SECONDS], ['SOAK_SAMPLE_SECONDS', SAMPLE_SECONDS]] as const) {
    if (!(value > 0)) {
      console.error(`soak: ${name} must be a positive number of ${name.endsWith('MINUTES') ? 'minutes' : 'seconds'}`);
      return 1;
    }
  }
  if (FIXED_RATE !== undefined && !(FIXED_RATE > 0)) {
    console.error('soak: SOAK_RATE must be a positive number of jobs per second');
    return 1;
  }
  const started: Started = {};
  let stopping = false;
  const onSignal = (): void => {
    void cleanup(started).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const background: Promise<void>[] = [];
  try {
    const sink = await SmtpSink.start({ name: 'sink.test' });
    started.sink = sink;
    const { postern, server, ports } = await startServer(sink.port, started);
    const ledger = new DeliveryLedger();
    const traffic = new SoakTraffic(ports, ledger, `s${process.pid}`);
    started.traffic = traffic;

    // Collectors: POP3 empties each mailbox, the sink hands over what was relayed.
    for (const mailbox of MAILBOXES) background.push(collectPop3(ports.pop3s, mailbox, ledger, () => stopping));
    background.push(collectSink(sink, ledger, () => stopping));

    const metricsUrl = `http://127.0.0.1:${server.port('metrics')}/metrics`;
    let rate = FIXED_RATE;
    let peak: number | undefined;
    if (rate === undefined) {
      log(`measuring the peak: ${PEAK_CLIENTS} clients, busy jobs back to back, ${PEAK_SECONDS} s`);
      peak = await measurePeak(traffic, PEAK_SECONDS * 1000);
      rate = peak / 2;
      log(`peak ${peak.toFixed(1)} jobs/s; waiting for the queue to drain`);
      await waitForQueue(metricsUrl, 0, DRAIN_TIMEOUT_MS);
    }
    traffic.recyclePools();
    const restBefore = await atRest(server.pid);

    log(`soaking for ${MINUTES} min at ${rate.toFixed(1)} jobs/s, sampling every ${SAMPLE_SECONDS} s`);
    const samples: Sample[] = [];
    // Every sample as it is taken, for a look at the curve (and kept if the run dies).
    const samplesFile = join(tmpdir(), `postern-soak-${process.pid}.csv`);
    writeFileSync(samplesFile, 'seconds,rss_bytes,fds,heap_used_bytes,queue,jobs_open\n');
    log(`samples in ${samplesFile}`);
    const soakBegin = performance.now();
    const soak = await runSoak(traffic, rate, MINUTES * 60_000, async (inFlight) => {
      const metrics = await readMetrics(metricsUrl);
      const sample = { at: performance.now(), rss: rssBytes(server.pid), fds: openFds(server.pid), ...metrics, inFlight };
      samples.push(sample);
      appendFileSync(samplesFile, `${((sample.at - soakBegin) / 1000).toFixed(1)},${sample.rss},${sample.fds},${sample.heap},${sample.queue},${inFlight}\n`);
      return sample;
    });

    log('soak over; waiting until everything accepted has arrived');
    const drained = await waitForDeliveries(ledger, metricsUrl, DRAIN_TIMEOUT_MS);
    traffic.close();
    started.traffic = undefined;
    const restAfter = await atRest(server.pid);
    stopping = true;
    await Promise.all(background);
    const exit = await server.stop();
    started.server = undefined;
    await postern.dispose();
    started.postern = undefined;

    return report({ samples, soak, rate, peak, ledger, traffic, drained, exit, restBefore, restAfter });
  } finally {
    stopping = true;
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup(started);
  }
}

async function startServer(
  sinkPort: number,
  started: Started,
): Promise<{ postern: PosternInstance; server: PosternProcess; ports: { mx: number; submission: number; submissions: number; pop3s: number } }> {
  const postern = new PosternInstance({
    hostname: 'soak-postern.test',
    pop3: true,
    metrics: true,
    logLevel: 'info',
    limits: { max_message_size: MAX_MESSAGE_SIZE, max_connections_per_ip: 1000 },
    relay: { smarthost: `[127.0.0.1]:${sinkPort}`, smarthost_tls: 'none' },
  });
  started.postern = postern;
  // One account sends all the submissions: lift its hourly and daily quotas.
  appendFileSync(postern.configPath, '\n[submission]\nmax_messages_per_hour = 0\nmax_recipients_per_day = 0\n');
  await postern.cliOk(['domain', 'add', DOMAIN]);
  for (const user of [...MAILBOXES, SENDER, VICTIM]) await postern.addUser(user, PASSWORD);
  for (const [alias, targets] of Object.entries(ALIASES)) for (const target of targets) await postern.cliOk(['alias', 'add', alias, target]);
  const server = await postern.start();
  started.server = server;
  const ports = { mx: server.port('mx'), submission: server.port('submission'), submissions: server.port('submissions'), pop3s: server.port('pop3s') };
  for (const port of Object.values(ports)) await waitUntilAccepting(port);
  return { postern, server, ports };
}

/** Busy jobs back to back from PEAK_CLIENTS clients; jobs completed (not failed) per second. */
async function measurePeak(traffic: SoakTraffic, durationMs: number): Promise<number> {
  let done = 0;
  const begin = performance.now();
  const deadline = begin + durationMs;
  await Promise.all(
    Array.from({ length: PEAK_CLIENTS }, async () => {
      while (performance.now() < deadline) if ((await traffic.run(traffic.pick(true))) !== 'failed') done += 1;
    }),
  );
  return done / ((performance.now() - begin) / 1000);
}

interface SoakRun {
  readonly started: number;
  readonly completed: number;
  readonly seconds: number;
  /** Jobs not started on time because MAX_IN_FLIGHT were open. */
  readonly held: number;
}

/** Starts jobs on a clock at `rate` per second for `durationMs`, then waits for the open ones. */
async function runSoak(traffic: SoakTraffic, rate: number, durationMs: number, sample: (inFlight: number) => Promise<Sample>): Promise<SoakRun> {
  const begin = performance.now();
  let started = 0;
  let completed = 0;
  let held = 0;
  let inFlight = 0;
  let nextSample = begin;
  let nextProgress = begin + 60_000;
  const open = new Set<Promise<Outcome>>();
  while (performance.now() - begin < durationMs) {
    const now = performance.now();
    const due = Math.floor(((now - begin) / 1000) * rate) - started;
    for (let i = 0; i < due; i++) {
      if (inFlight >= MAX_IN_FLIGHT) {
        held += due - i;
        started += due - i; // Skipped, not owed later: the clock does not wait for a slow server.
        break;
      }
      started += 1;
      inFlight += 1;
      const job = traffic.run(traffic.pick()).finally(() => {
        inFlight -= 1;
        completed += 1;
        open.delete(job);
      });
      open.add(job);
    }
    if (now >= nextSample) {
      nextSample += SAMPLE_SECONDS * 1000;
      const s = await sample(inFlight);
      if (now >= nextProgress) {
        nextProgress += 60_000;
        log(`${((now - begin) / 60_000).toFixed(0)} min: RSS ${mib(s.rss)} MiB, heap ${mib(s.heap)} MiB, ${s.fds} fds, queue ${s.queue}, ${inFlight} jobs open, ${completed} done`);
      }
    }
    await sleep(10);
  }
  const seconds = (performance.now() - begin) / 1000;
  // Idle clients started near the end are still waiting; they finish, and count, but the rate is
  // that of the clock's window.
  await Promise.all(open);
  return { started: started - held, completed, seconds, held };
}

/** POP3 sessions that broke (connect, login or a command failed), for the summary. */
const pop3Failures: string[] = [];

/** One POP3 client per mailbox, as a mail client polls: RETR and DELE up to 200 messages a session. */
async function collectPop3(port: number, mailbox: string, ledger: DeliveryLedger, stopping: () => boolean): Promise<void> {
  for (;;) {
    // The last pass runs after `stopping`, so whatever arrived during the drain is counted.
    const last = stopping();
    let count = 0;
    try {
      count = await retrieveAndDelete(port, mailbox, ledger);
    } catch (error) {
      pop3Failures.push(`${mailbox}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (last) return;
    await sleep(count > 0 ? 200 : 1_000);
  }
}

/** One session: STAT, then RETR and DELE each message (up to 200); returns how many were there. */
async function retrieveAndDelete(port: number, mailbox: string, ledger: DeliveryLedger): Promise<number> {
  const client = await BenchPop3Client.connect(port);
  try {
    await client.login({ user: mailbox, password: PASSWORD });
    const count = Number((await client.expectOk('STAT')).split(' ')[1]);
    const ids: string[] = [];
    for (let n = 1; n <= Math.min(count, 200); n++) {
      const text = (await client.multiLine(`RETR ${n}`)).toString('latin1');
      const id = /^X-Soak-Id: (\S+)/m.exec(text)?.[1];
      if (id !== undefined) ids.push(id);
      await client.expectOk(`DELE ${n}`);
    }
    // Deleted only once QUIT is answered (RFC 1939 6, the UPDATE state): counted then.
    await client.quit();
    for (const id of ids) ledger.delivered(id, mailbox);
    return count;
  } finally {
    client.destroy();
  }
}

/** Takes what the relay peer received; keeps its records from growing for the whole run. */
async function collectSink(sink: SmtpSink, ledger: DeliveryLedger, stopping: () => boolean): Promise<void> {
  for (;;) {
    const last = stopping();
    sink.commands.length = 0;
    for (const m of sink.messages.splice(0)) {
      const id = /^X-Soak-Id: (\S+)/m.exec(m.data.toString('latin1'))?.[1];
      if (id !== undefined) for (const r of m.delivered) ledger.delivered(id, r);
    }
    if (last) return;
    await sleep(500);
  }
}

/** Waits until every owed delivery arrived and the queue is empty; false on timeout. */
async function waitForDeliveries(ledger: DeliveryLedger, metricsUrl: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (ledger.deliveredCount === ledger.owedCount && (await queueDepth(metricsUrl)) === 0) return true;
    await sleep(1_000);
  }
  return false;
}

async function waitForQueue(metricsUrl: string, depth: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await queueDepth(metricsUrl)) > depth) {
    if (Date.now() > deadline) throw new Error(`the queue did not drain within ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}

/** Messages in the queue in any state, and the heap in use, from /metrics. */
async function readMetrics(metricsUrl: string): Promise<{ queue: number; heap: number }> {
  const samples = parsePrometheusText(await (await fetch(metricsUrl)).text());
  const queue = ['active', 'queued', 'deferred', 'hold'].reduce((sum, state) => sum + samples.value('postern_queue_messages', { state }), 0);
  return { queue, heap: samples.value('postern_nodejs_heap_size_used_bytes', {}) };
}

async function queueDepth(metricsUrl: string): Promise<number> {
  return (await readMetrics(metricsUrl)).queue;
}

interface Rest {
  readonly fds: number;
  readonly rss: number;
}

/**
 * The server with no client connected (the soak's pools closed, the idle jobs over): its
 * descriptors should be the same before and after the soak, give or take the smart-host
 * connection it keeps for a while. The least of a few readings, as a POP3 poll may be open.
 */
async function atRest(pid: number): Promise<Rest> {
  await sleep(2_000);
  let fds = Infinity;
  for (let i = 0; i < 6; i++) {
    fds = Math.min(fds, openFds(pid));
    await sleep(500);
  }
  return { fds, rss: rssBytes(pid) };
}

function rssBytes(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!kib) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib[1]) * 1024;
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

interface Report {
  readonly samples: readonly Sample[];
  readonly soak: SoakRun;
  readonly rate: number;
  readonly peak: number | undefined;
  readonly ledger: DeliveryLedger;
  readonly traffic: SoakTraffic;
  readonly drained: boolean;
  readonly exit: number | NodeJS.Signals | null;
  readonly restBefore: Rest;
  readonly restAfter: Rest;
}

function report({ samples, soak, rate, peak, ledger, traffic, drained, exit, restBefore, restAfter }: Report): number {
  const problems: string[] = [];
  const judge = (name: string, values: readonly number[], statistic: Statistic, unit: (v: number) => string, criterion = true): Flatness => {
    const f = flatness(values, statistic, TOLERANCE, Math.ceil(WARM_UP_SECONDS / SAMPLE_SECONDS));
    const what = statistic === 'mean' ? 'mean' : '90th percentile';
    console.log(
      `${name.padEnd(5)} first ${unit(values[0]!)}, last ${unit(values[values.length - 1]!)}; ` +
        `${what} of 2nd tenth ${unit(f.early)}, of last fifth ${unit(f.late)}: ratio ${f.ratio.toFixed(3)} (${f.flat ? 'no' : 'MORE than'} ${TOLERANCE * 100}% growth)`,
    );
    if (!f.flat && criterion) problems.push(`${name} grew (ratio ${f.ratio.toFixed(3)})`);
    return f;
  };
  console.log('');
  console.log(`soak: ${MINUTES} min, ${samples.length} samples every ${SAMPLE_SECONDS} s`);
  if (peak !== undefined) console.log(`peak ${peak.toFixed(1)} jobs/s (busy jobs, ${PEAK_CLIENTS} clients); target half of it: ${rate.toFixed(1)} jobs/s`);
  else console.log(`target ${rate.toFixed(1)} jobs/s (SOAK_RATE)`);
  const achieved = soak.started / soak.seconds;
  console.log(
    `achieved ${achieved.toFixed(1)} jobs/s started (${(achieved / rate).toFixed(2)} of the target), ${soak.completed} of ${soak.started} completed; ` +
      `${soak.held} jobs skipped with ${MAX_IN_FLIGHT} open`,
  );
  if (samples.length >= 10) {
    judge('RSS', samples.map((s) => s.rss), 'upper', (v) => `${mib(v)} MiB`);
    judge('fds', samples.map((s) => s.fds), 'mean', (v) => v.toFixed(1));
    // Shown, not judged: the heap in use swings with the collector's rhythm; RSS is what counts.
    judge('heap', samples.map((s) => s.heap), 'mean', (v) => `${mib(v)} MiB`, false);
    console.log(`RSS by the mean, for comparison: ratio ${flatness(samples.map((s) => s.rss), 'mean', TOLERANCE, Math.ceil(WARM_UP_SECONDS / SAMPLE_SECONDS)).ratio.toFixed(3)}`);
  } else problems.push(`only ${samples.length} samples: run longer or sample more often`);
  const restRatio = restAfter.fds / restBefore.fds;
  console.log(
    `at rest (no client connected): ${restBefore.fds} fds and ${mib(restBefore.rss)} MiB before the soak, ` +
      `${restAfter.fds} fds and ${mib(restAfter.rss)} MiB after: fds ratio ${restRatio.toFixed(3)}`,
  );
  if (restRatio > 1 + TOLERANCE) problems.push(`more descriptors at rest after the soak (${restBefore.fds} -> ${restAfter.fds})`);
  console.log(`queue depth: at most ${Math.max(...samples.map((s) => s.queue))}; jobs open at once: at most ${Math.max(...samples.map((s) => s.inFlight))}`);

  console.log('jobs (accepted / refused as expected / failed):');
  let failed = 0;
  let sent = 0;
  let accepted = 0;
  for (const [kind, counts] of [...traffic.tally.byKind].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`  ${kind.padEnd(20)} ${String(counts.accepted).padStart(7)} ${String(counts.refused).padStart(7)} ${String(counts.failed).padStart(5)}`);
    failed += counts.failed;
    if (carriesMessage(kind)) sent += counts.accepted + counts.refused + counts.failed;
    accepted += counts.accepted;
  }
  for (const f of traffic.tally.failures) console.log(`  failure: ${f}`);
  if (failed > 0) problems.push(`${failed} jobs failed`);
  console.log(`POP3 sessions that broke: ${pop3Failures.length}`);
  for (const f of pop3Failures.slice(0, 10)) console.log(`  POP3: ${f}`);
  if (pop3Failures.length > 0) problems.push(`${pop3Failures.length} POP3 sessions broke`);

  const missing = ledger.missing();
  const unexpected = ledger.unexpected();
  console.log(
    `messages: ${sent} sent, ${accepted} accepted (250), deliveries owed ${ledger.owedCount}, delivered ${ledger.deliveredCount}, ` +
      `lost ${missing.length}, delivered though refused ${unexpected.length}, duplicates ${ledger.duplicates}`,
  );
  for (const m of missing.slice(0, 10)) console.log(`  lost: ${m}`);
  for (const u of unexpected.slice(0, 10)) console.log(`  delivered though refused: ${u}`);
  if (missing.length > 0) problems.push(`${missing.length} deliveries lost`);
  if (unexpected.length > 0) problems.push(`${unexpected.length} refused messages delivered`);
  if (!drained) problems.push(`not drained within ${DRAIN_TIMEOUT_MS / 1000} s`);
  if (exit !== 0) problems.push(`the server stopped with ${exit}, not 0`);
  console.log(problems.length === 0 ? 'soak: passed' : `soak: FAILED (${problems.join('; ')})`);
  return problems.length === 0 ? 0 : 1;
}

function carriesMessage(kind: JobKind): boolean {
  return kind !== 'mx-unknown' && kind !== 'mx-idle' && kind !== 'bad-password';
}

async function cleanup(started: Started): Promise<void> {
  started.traffic?.close();
  await started.server?.stop().catch(() => started.server?.kill());
  await started.postern?.dispose();
  await started.sink?.close();
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

function log(text: string): void {
  process.stderr.write(`soak: ${text}\n`);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  },
);
