// The client side of SMTP (RFC 5321) and LMTP (RFC 2033), which differ only in how a session
// opens and in what follows the final dot. This holds what they share: the socket and its replies
// (reply-stream.ts), the envelope (MAIL with the parameters the peer offers, RCPT per recipient
// and DATA, in one batch when the peer offers PIPELINING, RFC 2920), the dot-stuffed message, RSET
// after a transaction that stopped half-way, and QUIT.
// SMTP's opening (EHLO with HELO fallback, STARTTLS, AUTH) is remote/smtp-client.ts; LMTP's
// (LHLO, a Unix socket or TCP) is local/lmtp-client.ts.
//
// After the final dot an SMTP server gives one reply for the whole transaction; an LMTP server
// gives one per accepted recipient, in RCPT order (RFC 2033 4.2). A broken session throws
// SmtpClientError; replies, even refusals, are results, not errors.

import { connect as netConnect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { MailParams } from '../../mail/envelope.js';
import { headerSectionBounds } from '../../mail/header-section.js';
import { replyLine, type Reply } from '../../mail/reply.js';
import { dotStuff, hasEightBit, needsSmtpUtf8 } from './data-encoding.js';
import { errorText, ReplyStream, SmtpClientError } from './reply-stream.js';

/** RFC 5321 4.5.3.2 client timeouts, in milliseconds. */
export interface ClientTimeouts {
  readonly connectMs: number;
  /** 4.5.3.2.1: initial 220 message, 5 minutes; also EHLO, STARTTLS, AUTH, RSET. */
  readonly greetingMs: number;
  /** 4.5.3.2.2: MAIL, 5 minutes. */
  readonly mailMs: number;
  /** 4.5.3.2.3: RCPT, 5 minutes. */
  readonly rcptMs: number;
  /** 4.5.3.2.4: DATA initiation, 2 minutes. */
  readonly dataInitMs: number;
  /** 4.5.3.2.5: each block of data taken by the peer, 3 minutes. */
  readonly dataBlockMs: number;
  /** 4.5.3.2.6: reply after the final dot, 10 minutes (for LMTP: each of the replies). */
  readonly dataFinalMs: number;
}

export const RFC5321_TIMEOUTS: ClientTimeouts = {
  connectMs: 30_000,
  greetingMs: 300_000,
  mailMs: 300_000,
  rcptMs: 300_000,
  dataInitMs: 120_000,
  dataBlockMs: 180_000,
  dataFinalMs: 600_000,
};

export interface ClientRecipient {
  readonly address: string;
  /** RFC 3461 NOTIFY; [] is NEVER; undefined leaves the parameter out. */
  readonly notify?: readonly string[] | undefined;
  readonly orcpt?: { readonly addrType: string; readonly address: string } | undefined;
}

export interface OutboundTransaction {
  readonly sender: string;
  readonly recipients: readonly ClientRecipient[];
  /** The message, CRLF line endings, not yet dot-stuffed. */
  readonly message: Buffer;
  readonly mailParams: MailParams;
}

/**
 * The outcome of one recipient in one transaction: the peer's final reply for it (the RCPT reply
 * when that refused it, else the MAIL or DATA reply), our own refusal to offer it because the
 * message needs something the peer lacks (there is no way to send it there), or, for LMTP only,
 * no reply at all: the session broke after the final dot, before the peer answered for it.
 */
export type RecipientResult =
  | { readonly kind: 'reply'; readonly stage: 'mail' | 'rcpt' | 'data'; readonly reply: Reply }
  | { readonly kind: 'refused'; readonly status: string; readonly reason: string }
  | { readonly kind: 'unanswered'; readonly reason: string };

/** Where a session connects: a TCP address, or a Unix socket (LMTP, RFC 2033 section 1). */
export type ClientEndpoint =
  | { readonly kind: 'tcp'; readonly address: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

/** A reused session broke (or said 421) before its first reply of a transaction: nothing of the message was sent, a new session may be tried at once. */
export class StaleSessionError extends SmtpClientError {}

/** What a session needs to know besides its socket. */
export interface SessionSettings {
  /** "mx.example.org[192.0.2.1]:25", "unix:/run/dovecot/lmtp": in logs, errors and DSNs. */
  readonly peer: string;
  /** The peer's name in refusals ("... which mx.example.org does not support"). */
  readonly name: string;
  readonly timeouts: ClientTimeouts;
  readonly logger: Logger;
  /** RFC 5321 3.3: one reply after the dot; RFC 2033 4.2: one per accepted recipient. */
  readonly repliesAfterDot: 'one' | 'per-recipient';
}

const DATA_BLOCK = 64 * 1024;

export abstract class ClientSession {
  private transactions = 0;
  private closed = false;
  /**
   * Whether the peer holds no transaction, so the next one may open with MAIL: true after the
   * reply to the final dot (RFC 5321 4.1.1.4: it ends the transaction, whatever it says) or to a
   * refused MAIL (none began). False after one that stopped between (every RCPT or the DATA
   * refused, the sender still set), which RSET ends first. Postfix's client also reuses a
   * session without RSET after a completed transaction; the round trip it saves is one of four
   * per message.
   */
  private clean = true;
  /** EHLO/LHLO keywords (upper case) and their parameters; empty after HELO. */
  protected ehlo: ReadonlyMap<string, string> = new Map();

  protected constructor(
    protected readonly settings: SessionSettings,
    protected socket: Socket,
    protected readonly replies: ReplyStream,
  ) {}

  get peer(): string {
    return this.settings.peer;
  }

  get extensions(): ReadonlyMap<string, string> {
    return this.ehlo;
  }

  /** Still connected and in step with the peer (which has said nothing we did not ask for). */
  get usable(): boolean {
    return !this.closed && !this.replies.failed && !this.replies.hasUnreadInput;
  }

  /** The 220 greeting; anything else ends the session (RFC 5321 3.1: 554 is "no service here"). */
  protected async readGreeting(): Promise<void> {
    const greeting = await this.replies.next(this.settings.timeouts.greetingMs, 'the greeting');
    if (greeting.code !== 220) throw new SmtpClientError(`${this.peer} greeted with "${replyLine(greeting)}"`, { reply: greeting });
  }

  /** EHLO or LHLO; a 250 sets the extensions. The reply either way: what a refusal means is the protocol's. */
  protected async hello(verb: 'EHLO' | 'LHLO', name: string): Promise<Reply> {
    const r = await this.command(`${verb} ${name}`, this.settings.timeouts.greetingMs, `the reply to ${verb}`);
    if (r.code === 250) this.ehlo = parseEhlo(r);
    return r;
  }

  /** One transaction. Results are in the order of tx.recipients. */
  async send(tx: OutboundTransaction): Promise<RecipientResult[]> {
    if (!this.usable) throw new SmtpClientError(`session with ${this.peer} is closed`);
    const reused = this.transactions++ > 0;
    // RFC 5321 4.1.1.5: a transaction left half-way is ended before the next begins.
    if (!this.clean) await this.resetForReuse();
    // After a completed transaction the peer's first reply is what shows a session it closed
    // while idle (a timeout on its side, a restart): the reply to MAIL, before any of the message.
    const firstOnKeptSession = reused && this.clean;

    const results: (RecipientResult | undefined)[] = tx.recipients.map(() => undefined);
    const refusal = this.refuseMessage(tx);
    if (refusal) return results.map(() => refusal);
    tx.recipients.forEach((rcpt, i) => {
      // RFC 6531 section 3.2: a non-ASCII address cannot be sent to a server without SMTPUTF8.
      if (needsSmtpUtf8(rcpt.address) && !this.ehlo.has('SMTPUTF8')) {
        results[i] = refused('5.6.7', `the address ${rcpt.address} needs SMTPUTF8, which ${this.settings.name} does not support`);
      }
    });
    const offered = tx.recipients.flatMap((rcpt, i) => (results[i] ? [] : [{ rcpt, i }]));
    if (offered.length === 0) return results as RecipientResult[];

    const { mailMs, rcptMs, dataInitMs } = this.settings.timeouts;
    const mailCommand = `MAIL FROM:<${tx.sender}>${this.mailParams(tx)}`;
    const rcptCommands = offered.map(({ rcpt }) => `RCPT TO:<${rcpt.address}>${this.rcptParams(rcpt)}`);
    const pipelined = this.ehlo.has('PIPELINING');
    this.clean = false;
    let mail: Reply;
    const rcptReplies: Reply[] = [];
    /** The reply to DATA when it went in the batch; else DATA is sent once a recipient is accepted. */
    let dataReply: Reply | undefined;
    if (pipelined) {
      // RFC 2920 section 3.1: MAIL, the RCPTs and DATA, the last command of a group, in one
      // batch; the replies come back in order, and the message goes only after a 354.
      const batch = [mailCommand, ...rcptCommands, 'DATA'].map((c) => `${c}\r\n`).join('');
      mail = await this.opening(firstOnKeptSession, async () => {
        await this.write(batch, mailMs);
        return this.replies.next(mailMs, 'the reply to MAIL');
      });
      for (let i = 0; i < rcptCommands.length; i++) rcptReplies.push(await this.replies.next(rcptMs, 'the reply to RCPT'));
      dataReply = await this.replies.next(dataInitMs, 'the reply to DATA');
    } else {
      mail = await this.opening(firstOnKeptSession, () => this.command(mailCommand, mailMs, 'the reply to MAIL'));
      if (mail.code === 250) for (const c of rcptCommands) rcptReplies.push(await this.command(c, rcptMs, 'the reply to RCPT'));
    }
    if (mail.code !== 250) {
      this.clean = true;
      for (const { i } of offered) results[i] = { kind: 'reply', stage: 'mail', reply: mail };
      return results as RecipientResult[];
    }
    const accepted: number[] = [];
    offered.forEach(({ i }, k) => {
      const r = rcptReplies[k];
      if (r && (r.code === 250 || r.code === 251)) accepted.push(i);
      else if (r) results[i] = { kind: 'reply', stage: 'rcpt', reply: r };
    });
    if (accepted.length === 0) {
      // A peer that took DATA with no recipient (RFC 2920 3.1 says it must refuse it) gets an
      // empty message, whose reply ends the transaction and delivers nothing.
      if (dataReply?.code === 354) await this.endEmptyData();
      return results as RecipientResult[];
    }

    const finals = await this.data(tx.message, accepted.length, dataReply);
    accepted.forEach((i, k) => (results[i] = finals[k]));
    return results as RecipientResult[];
  }

  /** RSET (RFC 5321 4.1.1.5); throws if the session is no longer usable. */
  async reset(): Promise<void> {
    const r = await this.command('RSET', this.settings.timeouts.greetingMs, 'the reply to RSET');
    if (r.code !== 250) throw new SmtpClientError(`${this.peer} refused RSET: ${replyLine(r)}`, { reply: r });
  }

  /** QUIT politely, then close; never throws. */
  async quit(): Promise<void> {
    if (this.usable) {
      await this.command('QUIT', Math.min(this.settings.timeouts.greetingMs, 10_000), 'the reply to QUIT').catch(() => undefined);
    }
    this.close();
  }

  close(): void {
    this.closed = true;
    this.replies.fail(new SmtpClientError(`session with ${this.peer} closed`));
    this.socket.destroy();
  }

  /** Keeps the session from holding the process open while it idles in a pool. */
  unref(): void {
    this.socket.unref();
  }

  ref(): void {
    this.socket.ref();
  }

  /** The RSET that ends a transaction left half-way, before the next one on this session. */
  private async resetForReuse(): Promise<void> {
    try {
      await this.reset();
    } catch (err) {
      if (!(err instanceof SmtpClientError)) throw err;
      throw this.stale(err);
    }
    this.clean = true;
  }

  /**
   * Sends a transaction's first command(s) and reads the reply to MAIL. On a kept session whose
   * first word this is, a broken session or a 421 (the peer is closing it, RFC 5321 3.8) makes it
   * stale: nothing of the message went out, and the caller may try a new session at once.
   */
  private async opening(firstOnKeptSession: boolean, send: () => Promise<Reply>): Promise<Reply> {
    let reply: Reply;
    try {
      reply = await send();
    } catch (err) {
      if (!firstOnKeptSession || !(err instanceof SmtpClientError)) throw err;
      throw this.stale(err);
    }
    if (firstOnKeptSession && reply.code === 421) {
      this.close();
      throw new StaleSessionError(`reused session with ${this.peer} was closed: ${replyLine(reply)}`, { reply });
    }
    return reply;
  }

  /** A kept session's failure before any of the message went out: the caller may try a new session at once. */
  private stale(err: SmtpClientError): StaleSessionError {
    return new StaleSessionError(`reused session with ${this.peer} failed: ${err.message}`, { ...(err.reply ? { reply: err.reply } : {}), cause: err });
  }

  /** The final dot alone, after a 354 with no recipient accepted; its reply is read and dropped. */
  private async endEmptyData(): Promise<void> {
    const { dataBlockMs, dataFinalMs } = this.settings.timeouts;
    await this.write('.\r\n', dataBlockMs);
    // LMTP answers once per accepted recipient (RFC 2033 4.2): none here; SMTP once.
    if (this.settings.repliesAfterDot === 'one') await this.replies.next(dataFinalMs, 'the reply after an empty message');
    this.clean = true;
  }

  /** A reason not to offer the message at all, for every recipient. */
  private refuseMessage(tx: OutboundTransaction): RecipientResult | undefined {
    const name = this.settings.name;
    // RFC 1870 section 6: a message larger than the announced limit would only be refused.
    const limit = Number(this.ehlo.get('SIZE') ?? '0');
    if (Number.isFinite(limit) && limit > 0 && tx.message.length > limit) {
      return refused('5.3.4', `the message (${tx.message.length} octets) is larger than the ${limit} octets that ${name} accepts`);
    }
    // RFC 6152: 8-bit data may only go to a server that announced 8BITMIME (we do not downgrade).
    if (!this.ehlo.has('8BITMIME') && hasEightBit(tx.message)) {
      return refused('5.6.3', `the message has 8-bit content, but ${name} does not support 8BITMIME`);
    }
    // RFC 6531 section 3.2: internationalized mail cannot go to a server without SMTPUTF8. What
    // needs it is a non-ASCII sender or header field (non-ASCII recipients are refused one by one
    // at RCPT); a message only flagged SMTPUTF8 by its sender, with an ASCII envelope and header
    // section, needs nothing of the extension and goes without it, as Postfix sends it.
    if (!this.ehlo.has('SMTPUTF8') && (needsSmtpUtf8(tx.sender) || hasNonAsciiHeader(tx.message))) {
      return refused('5.6.7', `the message needs SMTPUTF8 (internationalized addresses or headers), which ${name} does not support`);
    }
    return undefined;
  }

  private mailParams(tx: OutboundTransaction): string {
    const p: string[] = [];
    if (this.ehlo.has('SIZE')) p.push(`SIZE=${tx.message.length}`);
    if (this.ehlo.has('8BITMIME') && (tx.mailParams.body === '8BITMIME' || hasEightBit(tx.message))) p.push('BODY=8BITMIME');
    if (this.ehlo.has('SMTPUTF8') && (tx.mailParams.smtputf8 || needsSmtpUtf8(tx.sender) || tx.recipients.some((r) => needsSmtpUtf8(r.address)))) {
      p.push('SMTPUTF8');
    }
    // RFC 3461 section 4: DSN parameters only to a server that offers DSN.
    if (this.ehlo.has('DSN')) {
      if (tx.mailParams.ret) p.push(`RET=${tx.mailParams.ret}`);
      if (tx.mailParams.envid !== undefined) p.push(`ENVID=${xtext(tx.mailParams.envid)}`);
    }
    return p.map((x) => ` ${x}`).join('');
  }

  private rcptParams(rcpt: ClientRecipient): string {
    if (!this.ehlo.has('DSN')) return '';
    const p: string[] = [];
    if (rcpt.notify) p.push(`NOTIFY=${rcpt.notify.length === 0 ? 'NEVER' : rcpt.notify.join(',')}`);
    if (rcpt.orcpt) p.push(`ORCPT=${rcpt.orcpt.addrType};${xtext(rcpt.orcpt.address)}`);
    return p.map((x) => ` ${x}`).join('');
  }

  /**
   * DATA (unless its reply `sent` came with the envelope's), the dot-stuffed message, and the
   * final word for each of the `accepted` recipients.
   */
  private async data(message: Buffer, accepted: number, sent: Reply | undefined): Promise<RecipientResult[]> {
    const { dataInitMs, dataBlockMs, dataFinalMs } = this.settings.timeouts;
    const go = sent ?? (await this.command('DATA', dataInitMs, 'the reply to DATA'));
    if (go.code !== 354) return Array.from({ length: accepted }, () => ({ kind: 'reply', stage: 'data', reply: go }));
    const payload = dotStuff(message);
    for (let at = 0; at < payload.length; at += DATA_BLOCK) {
      await this.write(payload.subarray(at, at + DATA_BLOCK), dataBlockMs);
    }
    if (this.settings.repliesAfterDot === 'one') {
      const final = await this.replies.next(dataFinalMs, 'the reply after the message data');
      this.clean = true;
      return Array.from({ length: accepted }, () => ({ kind: 'reply', stage: 'data', reply: final }));
    }
    // RFC 2033 4.2: one reply per accepted recipient, in RCPT order. When the session breaks
    // between them, the replies already read stand, and the peer's word on the rest is unknown.
    const finals: RecipientResult[] = [];
    while (finals.length < accepted) {
      try {
        finals.push({ kind: 'reply', stage: 'data', reply: await this.replies.next(dataFinalMs, 'a reply after the message data') });
      } catch (err) {
        if (!(err instanceof SmtpClientError)) throw err;
        while (finals.length < accepted) finals.push({ kind: 'unanswered', reason: err.message });
      }
    }
    this.clean = true;
    return finals;
  }

  protected async command(line: string, timeoutMs: number, waitingFor: string, logAs = line): Promise<Reply> {
    this.settings.logger.trace({ peer: this.peer, command: logAs }, 'client: >');
    await this.write(`${line}\r\n`, timeoutMs);
    const r = await this.replies.next(timeoutMs, waitingFor);
    this.settings.logger.trace({ peer: this.peer, reply: replyLine(r) }, 'client: <');
    return r;
  }

  /** Writes and waits until the data has gone to the kernel (the data-block timeout, 4.5.3.2.5). */
  protected write(data: string | Buffer, timeoutMs: number): Promise<void> {
    if (this.closed || this.replies.failed) return Promise.reject(new SmtpClientError(`session with ${this.peer} is closed`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new SmtpClientError(`timed out after ${Math.round(timeoutMs / 1000)}s sending to ${this.peer}`);
        this.replies.fail(err);
        reject(err);
      }, timeoutMs);
      this.socket.write(data, (err) => {
        clearTimeout(timer);
        if (err) reject(new SmtpClientError(`cannot send to ${this.peer}: ${errorText(err)}`, { cause: err }));
        else resolve();
      });
    });
  }
}

function refused(status: string, reason: string): RecipientResult {
  return { kind: 'refused', status, reason };
}

/** EHLO keywords (RFC 5321 4.1.1.1): the first line is the greeting, each further one "KEYWORD params". */
function parseEhlo(r: Reply): Map<string, string> {
  const ext = new Map<string, string>();
  for (const line of r.lines.slice(1)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line.trim());
    if (m) ext.set((m[1] ?? '').toUpperCase(), (m[2] ?? '').trim());
  }
  return ext;
}

/** RFC 3461 section 4: xtext encodes "+", "=", controls, space and non-ASCII as "+XX". */
function xtext(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** Why a session was cut by its courier's stop signal: the attempt is not done, it is retried after the restart. */
export function stoppedError(peer: string): SmtpClientError {
  return new SmtpClientError(`session with ${peer} cut: Postern is shutting down`);
}

/**
 * A connected socket to `endpoint`, or SmtpClientError naming `peer`. `signal` cuts it at any
 * time of its life (connecting, a TLS handshake, waiting for a reply): the socket is destroyed
 * with stoppedError, which reaches whoever reads it (the ReplyStream, the TLS socket on top).
 */
export function connectSocket(endpoint: ClientEndpoint, peer: string, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  if (signal?.aborted) return Promise.reject(stoppedError(peer));
  return new Promise((resolve, reject) => {
    const socket = endpoint.kind === 'tcp' ? netConnect({ host: endpoint.address, port: endpoint.port }) : netConnect({ path: endpoint.path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SmtpClientError(`connection to ${peer} timed out after ${Math.round(timeoutMs / 1000)}s`));
    }, timeoutMs);
    const onAbort = (): void => {
      clearTimeout(timer);
      const err = stoppedError(peer);
      socket.destroy(err);
      reject(err); // no-op once connected
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => signal?.removeEventListener('abort', onAbort));
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err instanceof SmtpClientError ? err : new SmtpClientError(`cannot connect to ${peer}: ${errorText(err)}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      // Errors reach the ReplyStream (or the TLS socket on top); this only keeps an error on the
      // raw socket while neither listens, e.g. mid-handshake, from being unhandled.
      socket.on('error', () => undefined);
      if (endpoint.kind === 'tcp') socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Whether the header section holds a byte outside ASCII (a UTF-8 header field, RFC 6532). */
function hasNonAsciiHeader(message: Buffer): boolean {
  const { end } = headerSectionBounds(message);
  for (let i = 0; i < end; i++) if ((message[i] as number) >= 0x80) return true;
  return false;
}
