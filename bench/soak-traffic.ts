// The traffic of `npm run soak`: a mix of what a small mail server sees in a day, as jobs that
// each open their own connection (or borrow one from a submission pool) and report how the
// server answered. Every message carries a unique id (X-Soak-Id) and the jobs tell the ledger
// which destinations each accepted message is owed to, so the run can count what was lost.
//
// The mix, by weight: MX deliveries to local users (some plus-addressed, some to two users),
// to aliases (one target, two targets, one that forwards to the relay peer); submissions with
// AUTH over STARTTLS (RFC 3207) and implicit TLS (RFC 8314), to local users and to the relay
// peer; and what a server must refuse or survive: unknown recipients (550 5.1.1), wrong
// passwords (535, or 454 once the address is locked out), oversized messages (552 5.3.4 after
// the final dot, RFC 1870 6.1), clients that drop the connection in the middle of DATA, and
// clients that greet and then sit idle before QUIT.

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer, { type Transporter } from 'nodemailer';
import { ReplyReader } from './auth-sessions.js';
import type { DeliveryLedger } from './soak-verdict.js';

export type JobKind =
  | 'mx-local'
  | 'mx-alias'
  | 'mx-unknown'
  | 'mx-oversized'
  | 'mx-drop'
  | 'mx-idle'
  | 'submission-starttls'
  | 'submission-implicit'
  | 'bad-password';

/**
 * How one job ended: accepted (250 after the final dot), refused as it should have been (or
 * dropped on purpose), or failed: the server answered something the job did not expect, or the
 * connection broke. Failures are reported, and fail the run, but they are not lost mail: the
 * client was never told 250.
 */
export type Outcome = 'accepted' | 'refused' | 'failed';

const WEIGHTS: Readonly<Record<JobKind, number>> = {
  'mx-local': 40,
  'mx-alias': 10,
  'mx-unknown': 3,
  'mx-oversized': 1,
  'mx-drop': 2,
  'mx-idle': 2,
  'submission-starttls': 25,
  'submission-implicit': 15,
  'bad-password': 2,
};

/** The kinds the peak is measured with: those limited by the server's work, not by waiting. */
const BUSY_KINDS: readonly JobKind[] = ['mx-local', 'mx-alias', 'mx-unknown', 'mx-oversized', 'mx-drop', 'submission-starttls', 'submission-implicit'];

export const DOMAIN = 'soak.test';
export const REMOTE = 'remote@sink.test';
/** The mailboxes POP3 empties. */
export const MAILBOXES = Array.from({ length: 8 }, (_, i) => `u${i}@${DOMAIN}`);
export const SENDER = `sender@${DOMAIN}`;
/** An account only ever tried with the wrong password (a right one would clear the lockout). */
export const VICTIM = `victim@${DOMAIN}`;
export const PASSWORD = 'soak password, not secret';
/** Alias -> where it delivers. */
export const ALIASES: Readonly<Record<string, readonly string[]>> = {
  [`info@${DOMAIN}`]: [`u0@${DOMAIN}`],
  [`team@${DOMAIN}`]: [`u1@${DOMAIN}`, `u2@${DOMAIN}`],
  [`fwd@${DOMAIN}`]: [REMOTE],
};
/** [limits] max_message_size for the soak: small, so the oversized job is cheap to send. */
export const MAX_MESSAGE_SIZE = 128 * 1024;

export interface Ports {
  readonly mx: number;
  readonly submission: number;
  readonly submissions: number;
}

export interface Tally {
  readonly byKind: Map<JobKind, Record<Outcome, number>>;
  /** The first few failures, for the summary. */
  readonly failures: string[];
}

/** Starts jobs and counts how they end; owns the pooled submission transports. */
export class SoakTraffic {
  readonly tally: Tally = { byKind: new Map(), failures: [] };
  private sequence = 0;
  private starttls!: Transporter;
  private implicit!: Transporter;
  private readonly random = Math.random;

  constructor(
    private readonly ports: Ports,
    private readonly ledger: DeliveryLedger,
    private readonly runTag: string,
  ) {
    this.openPools();
  }

  /**
   * Pools, as a mail client or a web application keeps them, recycled every few messages so
   * that handshakes and logins happen all along the run.
   */
  private openPools(): void {
    const common = { pool: true, maxConnections: 4, maxMessages: 20, host: '127.0.0.1', tls: { rejectUnauthorized: false } } as const;
    const auth = { user: SENDER, pass: PASSWORD };
    this.starttls = nodemailer.createTransport({ ...common, port: this.ports.submission, secure: false, requireTLS: true, auth });
    this.implicit = nodemailer.createTransport({ ...common, port: this.ports.submissions, secure: true, auth });
  }

  /** Closes the pooled connections (for a measurement at rest); new ones open on the next job. */
  recyclePools(): void {
    this.close();
    this.openPools();
  }

  /** A job drawn from the whole mix (busyOnly: from the kinds the peak is measured with). */
  pick(busyOnly = false): JobKind {
    const kinds = (Object.keys(WEIGHTS) as JobKind[]).filter((k) => !busyOnly || BUSY_KINDS.includes(k));
    const total = kinds.reduce((sum, k) => sum + WEIGHTS[k], 0);
    let r = this.random() * total;
    for (const k of kinds) {
      r -= WEIGHTS[k];
      if (r < 0) return k;
    }
    return kinds[kinds.length - 1]!;
  }

  /** Runs one job to its end; never rejects. */
  async run(kind: JobKind): Promise<Outcome> {
    let outcome: Outcome;
    try {
      outcome = await this.dispatch(kind);
    } catch (error) {
      outcome = 'failed';
      if (this.tally.failures.length < 20) this.tally.failures.push(`${kind}: ${error instanceof Error ? error.message : String(error)}`);
    }
    const counts = this.tally.byKind.get(kind) ?? { accepted: 0, refused: 0, failed: 0 };
    counts[outcome] += 1;
    this.tally.byKind.set(kind, counts);
    return outcome;
  }

  close(): void {
    this.starttls.close();
    this.implicit.close();
  }

  private dispatch(kind: JobKind): Promise<Outcome> {
    switch (kind) {
      case 'mx-local': {
        const first = this.choose(MAILBOXES);
        const second = this.random() < 0.2 ? this.choose(MAILBOXES.filter((m) => m !== first)) : undefined;
        // Plus-addresses deliver to the user's own mailbox.
        const rcpt = this.random() < 0.2 ? first.replace('@', `+tag${this.sequence % 7}@`) : first;
        return this.mxMessage(second === undefined ? [rcpt] : [rcpt, second], second === undefined ? [first] : [first, second]);
      }
      case 'mx-alias': {
        const alias = this.choose(Object.keys(ALIASES));
        return this.mxMessage([alias], ALIASES[alias]!);
      }
      case 'mx-unknown':
        return this.mxUnknown();
      case 'mx-oversized':
        return this.mxOversized();
      case 'mx-drop':
        return this.mxDrop();
      case 'mx-idle':
        return this.mxIdle();
      case 'submission-starttls':
        return this.submit(this.starttls);
      case 'submission-implicit':
        return this.submit(this.implicit);
      case 'bad-password':
        return this.badPassword();
    }
  }

  private nextId(): string {
    this.sequence += 1;
    return `${this.runTag}-${this.sequence}`;
  }

  private choose<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  /** Mostly about 1 KiB, some 8 KiB, a few 48 KiB: lines of 78 octets (RFC 5322 2.1.1). */
  private body(): string {
    const r = this.random();
    const lines = r < 0.8 ? 13 : r < 0.95 ? 105 : 630;
    return `${'y'.repeat(76)}\r\n`.repeat(lines);
  }

  private message(id: string, from: string, to: readonly string[], body = this.body()): string {
    return `From: <${from}>\r\nTo: ${to.map((t) => `<${t}>`).join(', ')}\r\nSubject: soak ${id}\r\nX-Soak-Id: ${id}\r\n\r\n${body}`;
  }

  private async mxMessage(recipients: readonly string[], destinations: readonly string[]): Promise<Outcome> {
    const id = this.nextId();
    const from = `someone@client.test`;
    return mxSession(this.ports.mx, async (step) => {
      await step(`MAIL FROM:<${from}>`, 250);
      for (const r of recipients) await step(`RCPT TO:<${r}>`, 250);
      await step('DATA', 354);
      await step(`${dotStuff(this.message(id, from, recipients))}.`, 250);
      this.ledger.accepted(id, destinations);
      return 'accepted';
    });
  }

  private mxUnknown(): Promise<Outcome> {
    return mxSession(this.ports.mx, async (step) => {
      await step('MAIL FROM:<someone@client.test>', 250);
      await step(`RCPT TO:<nobody${this.sequence}@${DOMAIN}>`, 550);
      return 'refused';
    });
  }

  /** No SIZE parameter: the server learns the size only from the data, reads on and refuses at the dot. */
  private mxOversized(): Promise<Outcome> {
    const id = this.nextId();
    const to = this.choose(MAILBOXES);
    const body = `${'z'.repeat(76)}\r\n`.repeat(Math.ceil((MAX_MESSAGE_SIZE * 1.25) / 78));
    return mxSession(this.ports.mx, async (step) => {
      await step('MAIL FROM:<someone@client.test>', 250);
      await step(`RCPT TO:<${to}>`, 250);
      await step('DATA', 354);
      await step(`${this.message(id, 'someone@client.test', [to], body)}.`, 552);
      return 'refused';
    });
  }

  /** Half the message, then the connection is gone: nothing may be delivered (RFC 5321 4.1.1.4). */
  private mxDrop(): Promise<Outcome> {
    const id = this.nextId();
    const to = this.choose(MAILBOXES);
    return mxSession(this.ports.mx, async (step, socket) => {
      await step('MAIL FROM:<someone@client.test>', 250);
      await step(`RCPT TO:<${to}>`, 250);
      await step('DATA', 354);
      const text = this.message(id, 'someone@client.test', [to]);
      socket.write(text.slice(0, Math.floor(text.length / 2)));
      await sleep(50);
      socket.destroy();
      return 'refused';
    });
  }

  /** Greets, then says nothing for a while, as a slow or stuck client does. */
  private mxIdle(): Promise<Outcome> {
    const idleMs = 5_000 + Math.floor(this.random() * 25_000);
    return mxSession(this.ports.mx, async () => {
      await sleep(idleMs);
      return 'refused';
    });
  }

  private async submit(transport: Transporter): Promise<Outcome> {
    const id = this.nextId();
    const to = this.random() < 0.3 ? REMOTE : this.choose(MAILBOXES);
    const info = await transport.sendMail({ envelope: { from: SENDER, to: [to] }, raw: this.message(id, SENDER, [to]) });
    if (info.accepted?.length !== 1) throw new Error(`submission of ${id}: not accepted (${info.response})`);
    this.ledger.accepted(id, [to]);
    return 'accepted';
  }

  /**
   * From 127.0.0.2, so that the lockout this earns (auth.throttle ip_max_failures) falls on that
   * address and not on the one the real accounts log in from.
   */
  private async badPassword(): Promise<Outcome> {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: this.ports.submissions,
      secure: true,
      localAddress: '127.0.0.2',
      tls: { rejectUnauthorized: false },
      auth: { user: VICTIM, pass: 'not the password' },
      connectionTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 30_000,
    });
    try {
      await transport.verify();
      throw new Error('a wrong password was accepted');
    } catch (error) {
      const code = (error as { responseCode?: number }).responseCode;
      if (code === 535 || code === 454) return 'refused';
      throw error;
    } finally {
      transport.close();
    }
  }
}

type Step = (line: string, code: number) => Promise<void>;

/** One plain MX session: greeting, EHLO, the job's commands, QUIT; the socket is always destroyed. */
async function mxSession(port: number, body: (step: Step, socket: net.Socket) => Promise<Outcome>): Promise<Outcome> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const replies = new ReplyReader(socket);
  try {
    const expect = async (what: string, code: number): Promise<void> => {
      const reply = await replies.next();
      if (!reply.startsWith(String(code))) throw new Error(`${what} -> ${reply.trim()} (expected ${code})`);
    };
    const step: Step = async (line, code) => {
      socket.write(`${line}\r\n`);
      await expect(line.startsWith('From:') ? 'end of data' : line.split(' ')[0]!, code);
    };
    await expect('greeting', 220);
    await step('EHLO soak.client.test', 250);
    const outcome = await body(step, socket);
    if (!socket.destroyed) await step('QUIT', 221);
    return outcome;
  } finally {
    socket.destroy();
  }
}

/** RFC 5321 4.5.2: a line that starts with "." gets another. */
function dotStuff(text: string): string {
  return text.replace(/^\./gm, '..');
}
