// Test doubles of the session's seams (session-host.ts) and a harness that drives an SmtpSession
// with bytes and reads back the replies. Shared by session.test.ts and auth-command.test.ts.

import assert from 'node:assert/strict';
import type { Envelope, MailParams, RcptParams } from '../../src/mail/envelope.js';
import { SmtpError, reply, type Reply } from '../../src/mail/reply.js';
import type {
  AuthGuard,
  MessageAuthenticator,
  MessageSink,
  RecipientDecision,
  SessionConfig,
  SessionInfo,
  SessionIo,
  SessionPolicy,
  TransactionEvent,
} from '../../src/smtp/session-host.js';
import type { TlsInfo } from '../../src/mail/tls-info.js';
import { SmtpSession } from '../../src/smtp/session.js';
import { feedInPieces } from './session-feed.js';

// ---- test doubles of the seams --------------------------------------------------------------

export const TLS: TlsInfo = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };

export class FakeIo implements SessionIo {
  output = '';
  writes = 0;
  closed = false;
  pauses = 0;
  resumes = 0;
  tlsStarts = 0;
  failTls = false;
  write(data: string): void {
    assert.equal(this.closed, false, 'no write after close');
    this.output += data;
    this.writes += 1;
  }
  startTls(): Promise<TlsInfo> {
    this.tlsStarts += 1;
    return this.failTls ? Promise.reject(new Error('handshake failed')) : Promise.resolve(TLS);
  }
  close(): void {
    this.closed = true;
  }
  pause(): void {
    this.pauses += 1;
  }
  resume(): void {
    this.resumes += 1;
  }
}

/**
 * Refuses blocked@ senders, unknown@ recipients, messages containing "FORGED"; "error@" makes it
 * throw. alias@ expands to a local mailbox and a remote forward.
 */
export class FakePolicy implements SessionPolicy {
  senders: Array<{ sender: string; params: MailParams; info: SessionInfo }> = [];
  recipients: Array<{ recipient: string; params: RcptParams; accepted: number | undefined }> = [];
  checkedMessages: Array<{ info: SessionInfo; envelope: Envelope }> = [];
  acceptedMessages: Array<{ info: SessionInfo; envelope: Envelope }> = [];
  /** When set, checkRecipient waits for it. */
  gate: Promise<void> | undefined;
  async checkSender(info: SessionInfo, sender: string, params: MailParams): Promise<Reply | undefined> {
    this.senders.push({ sender, params, info });
    if (sender.startsWith('error@')) throw new Error('database is down');
    return sender.startsWith('blocked@') ? reply(550, '5.7.1', 'Sender refused') : undefined;
  }
  async checkRecipient(info: SessionInfo, recipient: string, params: RcptParams, accepted?: number): Promise<RecipientDecision> {
    if (this.gate) await this.gate;
    this.recipients.push({ recipient, params, accepted });
    if (recipient.startsWith('unknown@')) return { accept: false, reply: reply(550, '5.1.1', 'No such user') };
    if (recipient.startsWith('alias@')) {
      return { accept: true, address: recipient, mailboxes: ['bob@example.com'], forwards: ['carol@elsewhere.example'] };
    }
    if (recipient.startsWith('custom@')) {
      return { accept: true, address: recipient, mailboxes: [], reply: reply(251, '2.1.5', 'Will forward') };
    }
    return { accept: true, address: recipient.toLowerCase(), mailboxes: [recipient.toLowerCase()] };
  }
  async checkMessage(info: SessionInfo, envelope: Envelope, message: Buffer): Promise<Reply | undefined> {
    this.checkedMessages.push({ info, envelope });
    return message.includes('FORGED') ? reply(553, '5.7.1', 'Header From not owned') : undefined;
  }
  async messageAccepted(info: SessionInfo, envelope: Envelope): Promise<void> {
    this.acceptedMessages.push({ info, envelope });
  }
}

/** Counts what AUTH reports; `lockedIp`/`lockedAccounts` make it refuse, like AuthThrottle. */
export class FakeGuard implements AuthGuard {
  failures: Array<{ ip: string; account: string | undefined; mechanism: string }> = [];
  successes: Array<{ ip: string; account: string }> = [];
  lockedIp = false;
  lockedAccounts = new Set<string>();
  delayMs = 0;
  beforeAttempt(_ip: string): Reply | undefined {
    return this.lockedIp ? reply(454, '4.7.0', 'Too many failed authentication attempts, try again later') : undefined;
  }
  failure(ip: string, account: string | undefined, mechanism: string): number {
    this.failures.push({ ip, account, mechanism });
    return this.delayMs;
  }
  success(ip: string, account: string): void {
    this.successes.push({ ip, account });
  }
  isAccountLocked(account: string): boolean {
    return this.lockedAccounts.has(account);
  }
}

/** Stores messages; a message containing FAIL-HARD throws a plain Error, FAIL-SMTP an SmtpError. */
export class FakeSink implements MessageSink {
  messages: Array<{ envelope: Envelope; message: string }> = [];
  async accept(envelope: Envelope, message: Buffer): Promise<string> {
    const text = message.toString('latin1');
    if (text.includes('FAIL-HARD')) throw new Error('disk on fire');
    if (text.includes('FAIL-SMTP')) throw new SmtpError(452, '4.3.1', 'Insufficient system storage');
    this.messages.push({ envelope, message: text });
    return `Q${String(this.messages.length).padStart(11, '0')}`;
  }
}

export const baseConfig: SessionConfig = {
  hostname: 'mx.example',
  listener: 'mx',
  limits: {
    maxMessageSize: 10_000,
    maxRecipients: 3,
    maxCommandLine: 512,
    maxTextLine: 1000,
    maxErrors: 100,
    maxMessagesPerConnection: 0,
  },
  bareNewline: 'reject',
  starttls: true,
  auth: 'never',
  requireAuth: false,
  mechanisms: [],
};

export interface Harness {
  session: SmtpSession;
  io: FakeIo;
  policy: FakePolicy;
  sink: FakeSink;
  guard: FakeGuard;
  events: TransactionEvent[];
  /** What had been written to the client when each event was reported. */
  writtenAtEvent: string[];
}

export function harness(
  options: {
    config?: Partial<SessionConfig>;
    limits?: Partial<SessionConfig['limits']>;
    tls?: TlsInfo;
    authenticator?: MessageAuthenticator;
  } = {},
): Harness {
  const io = new FakeIo();
  const policy = new FakePolicy();
  const sink = new FakeSink();
  const guard = new FakeGuard();
  const events: TransactionEvent[] = [];
  const writtenAtEvent: string[] = [];
  const config = { ...baseConfig, ...options.config, limits: { ...baseConfig.limits, ...options.limits } };
  const session = new SmtpSession({
    config,
    clientIp: '192.0.2.7',
    clientPort: 40000,
    policy,
    authGuard: guard,
    sink,
    io,
    events: {
      transaction: (e) => {
        events.push(e);
        writtenAtEvent.push(io.output);
      },
    },
    now: () => 1_700_000_000_000,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.authenticator ? { authenticator: options.authenticator } : {}),
  });
  return { session, io, policy, sink, guard, events, writtenAtEvent };
}

export { settle } from './session-feed.js';

export async function feed(h: Harness, input: string | Buffer, fragment = Infinity): Promise<void> {
  await feedInPieces(h.session, typeof input === 'string' ? Buffer.from(input, 'utf8') : input, fragment);
}

/** Starts a session, sends `input`, returns everything written after the greeting. */
export async function converse(input: string | Buffer, options: Parameters<typeof harness>[0] = {}, fragment = Infinity) {
  const h = harness(options);
  h.session.start();
  assert.equal(h.io.output, '220 mx.example ESMTP Postern\r\n');
  h.io.output = '';
  await feed(h, input, fragment);
  return { ...h, output: h.io.output, replies: parseReplies(h.io.output) };
}

/** Splits the wire output into replies; every line must be a well-formed reply line. */
export function parseReplies(output: string): string[] {
  const replies: string[] = [];
  let current: string[] = [];
  for (const line of output.split('\r\n').slice(0, -1)) {
    const m = /^(\d{3})([ -])(.*)$/.exec(line);
    assert.ok(m, `malformed reply line ${JSON.stringify(line)}`);
    if (current.length > 0) assert.equal(m[1], current[0]?.slice(0, 3), 'one code per multi-line reply');
    current.push(line);
    if (m[2] === ' ') {
      replies.push(current.length === 1 ? (current[0] as string) : current.join('|'));
      current = [];
    }
  }
  assert.equal(current.length, 0, 'unfinished multi-line reply');
  assert.ok(output === '' || output.endsWith('\r\n'), 'output ends with CRLF');
  return replies;
}

/** "250 2.1.0" for replies with an enhanced code, the bare code ("250", "354") for the others. */
export const codes = (replies: string[]): string[] =>
  replies.map((r) => {
    const m = /^(\d{3})[ -](\d\.\d{1,3}\.\d{1,3}) /.exec(r);
    return m ? `${m[1]} ${m[2]}` : r.slice(0, 3);
  });

export const EHLO = 'EHLO client.example\r\n';
export const ENVELOPE = `${EHLO}MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n`;
