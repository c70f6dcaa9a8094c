// The end-to-end rows of `npm run bench`: messages/s from submission (STARTTLS + AUTH
// PLAIN, connections reused) through a relay to a receiving server, counted when the receiver
// has the message. The relays: Postern (smart host = the sink) and Postfix (relayhost = the sink,
// Cyrus SASL for AUTH). Two receivers, each its own row:
//   - "smtp-sink": Postfix's smtp-sink(1), one process that answers 250 and discards, the
//     receiver of Postfix's own performance tests. It costs little, so the relay sets the pace:
//     this row is the relay's speed, and the target's.
//   - "postfix-maildir": a third, private Postfix delivering into a Maildir on the same disk.
//     The whole chain: on two cores that Postfix costs more CPU per message than either relay
//     (docs/benchmarks.md), so it sets the pace of both and pulls the ratio toward 1.
// Both relays hand mail to the same kind of peer, one after the other.

import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { makeCertificate } from '../test/support/test-certificate.js';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { freePort, TestPostfix } from '../test/support/postfix.js';
import { PostfixSmtpSink } from '../test/support/postfix-smtp-sink.js';
import { waitUntilAccepting } from './auth-sessions.js';
import { formatRatio, median, ratioSpread, type Spread } from './contender.js';

const SENDER_DOMAIN = 'bench-relay.test';
const SENDER = `sender@${SENDER_DOMAIN}`;
const RECIPIENT = 'inbox@sink.test';
const PASSWORD = 'bench relay password';
const CLIENTS = 10;
const BASE_MESSAGES = 1000;
const DRAIN_TIMEOUT_MS = 180_000;
/** Postfix, then Postern, this many times: the disk's noise falls on both. */
const ROUNDS = 3;
/** 1 KiB of body in 16 lines, like the other rows. */
const BODY = `${'x'.repeat(62)}\r\n`.repeat(16);

/** At least this ratio, Postern / Postfix, on the smtp-sink row (issue #12). */
export const RELAY_TARGET = 2;

export type SinkKind = 'smtp-sink' | 'postfix-maildir';

/** The receiver: where both relays send, and how many messages it has taken. */
interface Sink {
  readonly address: string;
  readonly port: number;
  delivered(): number;
  stop(): Promise<void>;
}

/** What the row started, for the caller's cleanup whatever happens. */
export interface RelayRowStarted {
  sink?: Sink;
  postfixRelay?: TestPostfix;
  postern?: PosternInstance;
  server?: PosternProcess;
}

/** One relay's run: messages/s counted at the sink, and the rate its submission answered 250 at. */
interface RelayRun {
  readonly endToEnd: number;
  readonly accepted: number;
}

export interface RelayRowResult {
  readonly sink: SinkKind;
  readonly messages: number;
  /** Medians over the rounds. */
  readonly postfix: RelayRun;
  readonly postern: RelayRun;
  /** Postern / Postfix end to end, lowest and highest over the rounds. */
  readonly spread: Spread;
}

/** Stops what a row started; safe on a row that failed halfway, and twice. */
export async function stopRelayRow(started: RelayRowStarted): Promise<void> {
  await started.server?.stop().catch(() => started.server?.kill());
  await started.postern?.dispose();
  await started.postfixRelay?.stop();
  await started.sink?.stop();
}

export async function measureRelayRow(scale: number, sinkKind: SinkKind, started: RelayRowStarted): Promise<RelayRowResult> {
  const messages = Math.max(CLIENTS * 2, Math.round(BASE_MESSAGES * scale));
  const sink: Sink = sinkKind === 'smtp-sink' ? await PostfixSmtpSink.start() : await TestPostfix.start({ hostname: 'sink.test', domains: ['sink.test'] });
  started.sink = sink;

  const postfixRelay = await TestPostfix.start({
    hostname: 'relay-postfix.test',
    tls: await makeCertificate('relay-postfix.test'),
    users: [{ username: SENDER, password: PASSWORD }],
    relayhost: sink.address,
  });
  started.postfixRelay = postfixRelay;

  const submissionPort = await freePort();
  const postern = new PosternInstance({
    hostname: 'relay-postern.test',
    // Fixed ports: the log goes to a file, so the line naming the ports of port 0 is not read.
    mxPort: await freePort(),
    submissionPort,
    // As in the main table: the default level, into a file (bench.ts).
    logLevel: 'info',
    logToFile: true,
    // Like Postfix's default of accepting; the bench is not about rate limits.
    limits: { max_connections_per_ip: 1000 },
    relay: { smarthost: `[127.0.0.1]:${sink.port}`, smarthost_tls: 'none' },
  });
  started.postern = postern;
  await postern.cliOk(['domain', 'add', SENDER_DOMAIN]);
  await postern.addUser(SENDER, PASSWORD);
  // Submission quotas off: the bench measures the relay, not the rate limits.
  appendFileSync(postern.configPath, '\n[submission]\nmax_messages_per_hour = 0\nmax_recipients_per_day = 0\n');
  const server = await postern.start();
  started.server = server;
  await waitUntilAccepting(submissionPort);

  // Warm-up: both relays have their processes up and connections to the sink cached.
  await relayRun(postfixRelay.port, sink, 50);
  await relayRun(submissionPort, sink, 50);

  const postfixRuns: RelayRun[] = [];
  const posternRuns: RelayRun[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    postfixRuns.push(await relayRun(postfixRelay.port, sink, messages));
    posternRuns.push(await relayRun(submissionPort, sink, messages));
  }
  const medians = (runs: RelayRun[]): RelayRun => ({ endToEnd: median(runs.map((r) => r.endToEnd)), accepted: median(runs.map((r) => r.accepted)) });
  return {
    sink: sinkKind,
    messages,
    postfix: medians(postfixRuns),
    postern: medians(posternRuns),
    spread: ratioSpread(posternRuns.map((r) => r.endToEnd), postfixRuns.map((r) => r.endToEnd)),
  };
}

/** `count` messages from CLIENTS reused AUTH connections: until the last 250, and until the sink has them all. */
async function relayRun(port: number, sink: Sink, count: number): Promise<RelayRun> {
  const before = sink.delivered();
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: CLIENTS,
    maxMessages: Infinity,
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: SENDER, pass: PASSWORD },
  });
  const begin = process.hrtime.bigint();
  try {
    let next = 0;
    const client = async (): Promise<void> => {
      while (next < count) {
        next++;
        await transport.sendMail({
          envelope: { from: SENDER, to: [RECIPIENT] },
          raw: `From: <${SENDER}>\r\nTo: <${RECIPIENT}>\r\nSubject: relay bench\r\n\r\n${BODY}`,
        });
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
  } finally {
    transport.close();
  }
  const acceptedSeconds = Number(process.hrtime.bigint() - begin) / 1e9;
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  while (sink.delivered() - before < count) {
    if (Date.now() > deadline) {
      throw new Error(`relay row: only ${sink.delivered() - before} of ${count} messages reached the sink${sink instanceof TestPostfix ? `\n${sink.logTail()}` : ''}`);
    }
    await sleep(20);
  }
  return { endToEnd: count / (Number(process.hrtime.bigint() - begin) / 1e9), accepted: count / acceptedSeconds };
}

export function printRelayRows(results: readonly RelayRowResult[]): void {
  console.log('');
  console.log('End to end: submission (STARTTLS + AUTH PLAIN, 10 reused connections, 1 KiB) -> relay -> sink');
  console.log('  the relay hands every message to the sink (Postern: smarthost; Postfix: relayhost)');
  console.log('  sinks: smtp-sink = Postfix\'s smtp-sink(1), which discards (the relay sets the pace);');
  console.log('         postfix-maildir = a private Postfix delivering into a Maildir (the whole chain)');
  console.log(`  median msgs/s of ${ROUNDS} interleaved rounds, counted at the sink; "accepted": the rate of the relay's 250s`);
  const widths = [15, 9, 18, 18, 18, 18, 18];
  const header = ['sink', 'messages', 'postfix_msgs_per_s', 'postern_msgs_per_s', 'ratio', 'postfix_accepted', 'postern_accepted'];
  console.log(header.map((c, i) => c.padStart(widths[i]!)).join('  '));
  for (const result of results) {
    const cells = [
      result.sink,
      String(result.messages),
      result.postfix.endToEnd.toFixed(1),
      result.postern.endToEnd.toFixed(1),
      formatRatio(result.postern.endToEnd / result.postfix.endToEnd, result.spread),
      result.postfix.accepted.toFixed(1),
      result.postern.accepted.toFixed(1),
    ];
    console.log(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
  }
  const target = results.find((r) => r.sink === 'smtp-sink');
  if (target) {
    const ratio = target.postern.endToEnd / target.postfix.endToEnd;
    console.log(`relay target (smtp-sink row, median): at least ${RELAY_TARGET}x Postfix: ${ratio >= RELAY_TARGET ? 'met' : 'no'} (${ratio.toFixed(2)}x)`);
  }
}
