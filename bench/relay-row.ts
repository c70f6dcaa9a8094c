// The end-to-end row of `npm run bench`: messages/s from submission (STARTTLS + AUTH
// PLAIN, connections reused) through a relay to the receiving server, counted when the message
// is in the receiver's Maildir. The relays: Postern (smart host = the sink) and Postfix
// (relayhost = the sink, Cyrus SASL for AUTH). The sink is a third, private Postfix delivering
// into a Maildir, so both relays hand mail to the same kind of peer, one after the other.

import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { makeCertificate } from '../test/support/test-certificate.js';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { freePort, TestPostfix } from '../test/support/postfix.js';
import { waitUntilAccepting } from './auth-sessions.js';

const SENDER_DOMAIN = 'bench-relay.test';
const SENDER = `sender@${SENDER_DOMAIN}`;
const RECIPIENT = 'inbox@sink.test';
const PASSWORD = 'bench relay password';
const CLIENTS = 10;
const BASE_MESSAGES = 1000;
const DRAIN_TIMEOUT_MS = 180_000;
/** 1 KiB of body in 16 lines, like the other rows. */
const BODY = `${'x'.repeat(62)}\r\n`.repeat(16);

/** What the row started, for the caller's cleanup whatever happens. */
export interface RelayRowStarted {
  sink?: TestPostfix;
  postfixRelay?: TestPostfix;
  postern?: PosternInstance;
  server?: PosternProcess;
}

export interface RelayRowResult {
  readonly messages: number;
  readonly postfix: number;
  readonly postern: number;
}

export async function measureRelayRow(scale: number, started: RelayRowStarted): Promise<RelayRowResult> {
  const messages = Math.max(CLIENTS * 2, Math.round(BASE_MESSAGES * scale));
  const sink = await TestPostfix.start({ hostname: 'sink.test', domains: ['sink.test'] });
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
    // Fixed ports: at log level "warn" the line naming the ports of port 0 is not logged.
    mxPort: await freePort(),
    submissionPort,
    logLevel: 'warn',
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

  const postfixRate = await relayRun(postfixRelay.port, sink, messages);
  const posternRate = await relayRun(submissionPort, sink, messages);
  return { messages, postfix: postfixRate, postern: posternRate };
}

/** Messages/s: `count` messages from CLIENTS reused AUTH connections until all are in the sink's Maildir. */
async function relayRun(port: number, sink: TestPostfix, count: number): Promise<number> {
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
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  while (sink.delivered() - before < count) {
    if (Date.now() > deadline) {
      throw new Error(`relay row: only ${sink.delivered() - before} of ${count} messages reached the sink\n${sink.logTail()}`);
    }
    await sleep(20);
  }
  return count / (Number(process.hrtime.bigint() - begin) / 1e9);
}

export function printRelayRow(result: RelayRowResult): void {
  console.log('');
  console.log('End to end: submission (STARTTLS + AUTH PLAIN, 10 reused connections, 1 KiB) -> relay -> sink Maildir');
  console.log('  the relay hands every message to a private Postfix sink (Postern: smarthost; Postfix: relayhost)');
  const widths = [9, 18, 18, 6];
  console.log(['messages', 'postfix_msgs_per_s', 'postern_msgs_per_s', 'ratio'].map((c, i) => c.padStart(widths[i]!)).join('  '));
  const cells = [String(result.messages), result.postfix.toFixed(1), result.postern.toFixed(1), (result.postern / result.postfix).toFixed(2)];
  console.log(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
}
