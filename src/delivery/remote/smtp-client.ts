// Our SMTP client (RFC 5321): one session with one peer, able to carry several transactions.
// open() connects, reads the greeting, says EHLO (HELO when EHLO is refused), and starts TLS as
// the TlsMode asks; send() runs one transaction and returns the peer's final word per recipient.
// A broken session throws SmtpClientError; replies, even refusals, are results, not errors.

import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { MailParams } from '../../mail/envelope.js';
import { dotStuff, hasEightBit, needsSmtpUtf8 } from './data-encoding.js';
import { replyLine, type Reply } from '../../mail/reply.js';
import { errorText, ReplyStream, SmtpClientError } from './reply-stream.js';

export { SmtpClientError } from './reply-stream.js';

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
  /** 4.5.3.2.6: reply after the final dot, 10 minutes. */
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

/**
 * - opportunistic: STARTTLS when offered, certificate not checked (RFC 7435); plain text if
 *   the handshake fails, on a new connection.
 * - starttls: STARTTLS is required; without it the session fails (MTA-STS enforce, smart host).
 * - implicit: TLS from the first byte (RFC 8314, port 465).
 * - none: never TLS.
 */
export type TlsMode =
  | { readonly kind: 'opportunistic' }
  | { readonly kind: 'starttls'; readonly verify: boolean }
  | { readonly kind: 'implicit'; readonly verify: boolean }
  | { readonly kind: 'none' };

export interface ClientOptions {
  /** The peer's name: checked against its certificate, and named in logs and DSNs. */
  readonly host: string;
  /** The address to connect to (an address of `host`). */
  readonly address: string;
  readonly port: number;
  /** Our name in EHLO/HELO. */
  readonly heloName: string;
  readonly tls: TlsMode;
  /** Trust anchors for verified TLS; undefined: the system's. */
  readonly ca?: readonly (string | Buffer)[] | undefined;
  readonly timeouts: ClientTimeouts;
  readonly logger: Logger;
}

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
 * when that refused it, else the MAIL or DATA reply), or our own refusal to offer it because the
 * message needs something the peer lacks (RFC 5321 has no way to send it there).
 */
export type RecipientResult =
  | { readonly kind: 'reply'; readonly stage: 'mail' | 'rcpt' | 'data'; readonly reply: Reply }
  | { readonly kind: 'refused'; readonly status: string; readonly reason: string };

export interface SessionTls {
  readonly version: string;
  readonly cipher: string;
  /** The certificate was checked against the host name. */
  readonly verified: boolean;
}

/** The handshake failed: opportunistic TLS falls back to plain text on a new connection. */
class TlsHandshakeError extends SmtpClientError {}

const DATA_BLOCK = 64 * 1024;

export class SmtpClientConnection {
  private transactions = 0;
  private closed = false;

  private constructor(
    private readonly opts: ClientOptions,
    private socket: Socket,
    private readonly replies: ReplyStream,
    /** EHLO keywords (upper case) and their parameters; empty after HELO. */
    private ehlo: ReadonlyMap<string, string>,
    private tlsInfo: SessionTls | undefined,
  ) {}

  /** "mx.example.org[192.0.2.1]:25" */
  get peer(): string {
    return peerName(this.opts);
  }

  get extensions(): ReadonlyMap<string, string> {
    return this.ehlo;
  }

  get tls(): SessionTls | undefined {
    return this.tlsInfo;
  }

  /** Still connected and in step with the peer. */
  get usable(): boolean {
    return !this.closed && !this.replies.failed;
  }

  /** Connects and greets; throws SmtpClientError when no session can be had. */
  static async open(opts: ClientOptions): Promise<SmtpClientConnection> {
    try {
      return await SmtpClientConnection.openOnce(opts, opts.tls);
    } catch (err) {
      if (!(err instanceof TlsHandshakeError) || opts.tls.kind !== 'opportunistic') throw err;
      // RFC 7435 (opportunistic security): a failed handshake is no worse than no TLS offer.
      opts.logger.info({ peer: peerName(opts), err: err.message }, 'smtp client: TLS handshake failed, retrying without TLS');
      return SmtpClientConnection.openOnce(opts, { kind: 'none' });
    }
  }

  private static async openOnce(opts: ClientOptions, mode: TlsMode): Promise<SmtpClientConnection> {
    const peer = peerName(opts);
    const replies = new ReplyStream(peer);
    let socket: Socket = await connectTcp(opts);
    let tlsInfo: SessionTls | undefined;
    try {
      if (mode.kind === 'implicit') {
        const secure = await handshake(socket, opts, mode.verify);
        socket = secure;
        tlsInfo = sessionTls(secure, mode.verify);
      }
      replies.attach(socket);
      const conn = new SmtpClientConnection(opts, socket, replies, new Map(), tlsInfo);
      await conn.greet(mode);
      return conn;
    } catch (err) {
      replies.fail(err instanceof Error ? err : new Error(String(err)));
      socket.destroy();
      throw err;
    }
  }

  private async greet(mode: TlsMode): Promise<void> {
    const greeting = await this.replies.next(this.opts.timeouts.greetingMs, 'the greeting');
    // RFC 5321 3.1: a 554 greeting means "no SMTP service here"; any non-220 ends the session.
    if (greeting.code !== 220) throw new SmtpClientError(`${this.peer} greeted with "${replyLine(greeting)}"`, { reply: greeting });
    await this.hello();
    if (mode.kind !== 'opportunistic' && mode.kind !== 'starttls') return;
    if (!this.ehlo.has('STARTTLS')) {
      if (mode.kind === 'starttls') throw new SmtpClientError(`${this.peer} does not offer STARTTLS, which is required`);
      return;
    }
    await this.startTls(mode.kind === 'starttls', mode.kind === 'starttls' && mode.verify);
  }

  /** EHLO, or HELO when the peer refuses EHLO with 5xx (RFC 5321 3.2: an old server). */
  private async hello(): Promise<void> {
    const ehlo = await this.command(`EHLO ${this.opts.heloName}`, this.opts.timeouts.greetingMs, 'the reply to EHLO');
    if (ehlo.code === 250) {
      this.ehlo = parseEhlo(ehlo);
      return;
    }
    if (ehlo.code < 500) throw new SmtpClientError(`${this.peer} refused EHLO: ${replyLine(ehlo)}`, { reply: ehlo });
    const helo = await this.command(`HELO ${this.opts.heloName}`, this.opts.timeouts.greetingMs, 'the reply to HELO');
    if (helo.code !== 250) throw new SmtpClientError(`${this.peer} refused HELO: ${replyLine(helo)}`, { reply: helo });
    this.ehlo = new Map();
  }

  private async startTls(required: boolean, verify: boolean): Promise<void> {
    const r = await this.command('STARTTLS', this.opts.timeouts.greetingMs, 'the reply to STARTTLS');
    if (r.code !== 220) {
      if (required) throw new SmtpClientError(`${this.peer} refused STARTTLS: ${replyLine(r)}`, { reply: r });
      return;
    }
    // RFC 3207 section 4 / CVE-2011-0411: anything the peer sent after the 220 was sent in plain
    // text and must not be read as if it came through TLS.
    if (this.replies.hasUnreadInput) throw new SmtpClientError(`${this.peer} sent data after its STARTTLS reply`);
    this.replies.detach();
    const secure = await handshake(this.socket, this.opts, verify);
    this.socket = secure;
    this.tlsInfo = sessionTls(secure, verify);
    this.replies.attach(secure);
    // RFC 3207 section 4.2: forget what was learned before TLS, ask again.
    this.ehlo = new Map();
    await this.hello();
  }

  /** AUTH PLAIN or LOGIN (RFC 4954), only over TLS: a password never crosses the wire in clear. */
  async authenticate(username: string, password: string): Promise<void> {
    if (!this.tlsInfo) throw new SmtpClientError(`will not send credentials to ${this.peer} without TLS`);
    const offered = (this.ehlo.get('AUTH') ?? '').toUpperCase().split(/\s+/);
    const t = this.opts.timeouts.greetingMs;
    let r: Reply;
    if (offered.includes('PLAIN')) {
      r = await this.command(`AUTH PLAIN ${b64(`\0${username}\0${password}`)}`, t, 'the reply to AUTH', 'AUTH PLAIN ***');
    } else if (offered.includes('LOGIN')) {
      r = await this.command('AUTH LOGIN', t, 'the reply to AUTH');
      if (r.code === 334) r = await this.command(b64(username), t, 'the reply to the user name', '***');
      if (r.code === 334) r = await this.command(b64(password), t, 'the reply to the password', '***');
    } else {
      throw new SmtpClientError(`${this.peer} offers neither AUTH PLAIN nor AUTH LOGIN`);
    }
    if (r.code !== 235) throw new SmtpClientError(`${this.peer} refused our credentials: ${replyLine(r)}`, { reply: r });
  }

  /** One transaction. Results are in the order of tx.recipients. */
  async send(tx: OutboundTransaction): Promise<RecipientResult[]> {
    if (!this.usable) throw new SmtpClientError(`session with ${this.peer} is closed`);
    // RFC 5321 4.1.1.5: start each further transaction on a session from a clean state.
    if (this.transactions++ > 0) await this.reset();

    const results: (RecipientResult | undefined)[] = tx.recipients.map(() => undefined);
    const refusal = this.refuseMessage(tx);
    if (refusal) return results.map(() => refusal);
    tx.recipients.forEach((rcpt, i) => {
      // RFC 6531 section 3.2: a non-ASCII address cannot be sent to a server without SMTPUTF8.
      if (needsSmtpUtf8(rcpt.address) && !this.ehlo.has('SMTPUTF8')) {
        results[i] = refused('5.6.7', `the address ${rcpt.address} needs SMTPUTF8, which ${this.opts.host} does not support`);
      }
    });
    const offered = tx.recipients.flatMap((rcpt, i) => (results[i] ? [] : [{ rcpt, i }]));
    if (offered.length === 0) return results as RecipientResult[];

    const { mailMs, rcptMs } = this.opts.timeouts;
    const mailCommand = `MAIL FROM:<${tx.sender}>${this.mailParams(tx)}`;
    const rcptCommands = offered.map(({ rcpt }) => `RCPT TO:<${rcpt.address}>${this.rcptParams(rcpt)}`);
    let mail: Reply;
    const rcptReplies: Reply[] = [];
    if (this.ehlo.has('PIPELINING')) {
      // RFC 2920 section 3.1: MAIL and RCPT may go in one batch; replies come back in order.
      await this.write([mailCommand, ...rcptCommands].map((c) => `${c}\r\n`).join(''), mailMs);
      mail = await this.replies.next(mailMs, 'the reply to MAIL');
      for (let i = 0; i < rcptCommands.length; i++) rcptReplies.push(await this.replies.next(rcptMs, 'the reply to RCPT'));
    } else {
      mail = await this.command(mailCommand, mailMs, 'the reply to MAIL');
      if (mail.code === 250) for (const c of rcptCommands) rcptReplies.push(await this.command(c, rcptMs, 'the reply to RCPT'));
    }
    if (mail.code !== 250) {
      for (const { i } of offered) results[i] = { kind: 'reply', stage: 'mail', reply: mail };
      return results as RecipientResult[];
    }
    const accepted: number[] = [];
    offered.forEach(({ i }, k) => {
      const r = rcptReplies[k];
      if (r && (r.code === 250 || r.code === 251)) accepted.push(i);
      else if (r) results[i] = { kind: 'reply', stage: 'rcpt', reply: r };
    });
    if (accepted.length === 0) return results as RecipientResult[];

    const final = await this.data(tx.message);
    for (const i of accepted) results[i] = { kind: 'reply', stage: 'data', reply: final };
    return results as RecipientResult[];
  }

  /** RSET (RFC 5321 4.1.1.5); throws if the session is no longer usable. */
  async reset(): Promise<void> {
    const r = await this.command('RSET', this.opts.timeouts.greetingMs, 'the reply to RSET');
    if (r.code !== 250) throw new SmtpClientError(`${this.peer} refused RSET: ${replyLine(r)}`, { reply: r });
  }

  /** QUIT politely, then close; never throws. */
  async quit(): Promise<void> {
    if (this.usable) {
      await this.command('QUIT', Math.min(this.opts.timeouts.greetingMs, 10_000), 'the reply to QUIT').catch(() => undefined);
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

  /** A reason not to offer the message at all, for every recipient. */
  private refuseMessage(tx: OutboundTransaction): RecipientResult | undefined {
    const host = this.opts.host;
    // RFC 1870 section 6: a message larger than the announced limit would only be refused.
    const limit = Number(this.ehlo.get('SIZE') ?? '0');
    if (Number.isFinite(limit) && limit > 0 && tx.message.length > limit) {
      return refused('5.3.4', `the message (${tx.message.length} octets) is larger than the ${limit} octets that ${host} accepts`);
    }
    // RFC 6152: 8-bit data may only go to a server that announced 8BITMIME (we do not downgrade).
    if (!this.ehlo.has('8BITMIME') && hasEightBit(tx.message)) {
      return refused('5.6.3', `the message has 8-bit content, but ${host} does not support 8BITMIME`);
    }
    if ((tx.mailParams.smtputf8 || needsSmtpUtf8(tx.sender)) && !this.ehlo.has('SMTPUTF8')) {
      return refused('5.6.7', `the message needs SMTPUTF8 (internationalized addresses or headers), which ${host} does not support`);
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

  /** DATA, the dot-stuffed message, and the final reply (which applies to every accepted recipient). */
  private async data(message: Buffer): Promise<Reply> {
    const { dataInitMs, dataBlockMs, dataFinalMs } = this.opts.timeouts;
    const go = await this.command('DATA', dataInitMs, 'the reply to DATA');
    if (go.code !== 354) return go;
    const payload = dotStuff(message);
    for (let at = 0; at < payload.length; at += DATA_BLOCK) {
      await this.write(payload.subarray(at, at + DATA_BLOCK), dataBlockMs);
    }
    return this.replies.next(dataFinalMs, 'the reply after the message data');
  }

  private async command(line: string, timeoutMs: number, waitingFor: string, logAs = line): Promise<Reply> {
    this.opts.logger.trace({ peer: this.peer, command: logAs }, 'smtp client: >');
    await this.write(`${line}\r\n`, timeoutMs);
    const r = await this.replies.next(timeoutMs, waitingFor);
    this.opts.logger.trace({ peer: this.peer, reply: replyLine(r) }, 'smtp client: <');
    return r;
  }

  /** Writes and waits until the data has gone to the kernel (the data-block timeout, 4.5.3.2.5). */
  private write(data: string | Buffer, timeoutMs: number): Promise<void> {
    if (!this.usable) return Promise.reject(new SmtpClientError(`session with ${this.peer} is closed`));
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

function peerName(opts: { host: string; address: string; port: number }): string {
  return opts.host === opts.address ? `[${opts.address}]:${opts.port}` : `${opts.host}[${opts.address}]:${opts.port}`;
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
export function xtext(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function connectTcp(opts: ClientOptions): Promise<Socket> {
  const peer = peerName(opts);
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: opts.address, port: opts.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SmtpClientError(`connection to ${peer} timed out after ${Math.round(opts.timeouts.connectMs / 1000)}s`));
    }, opts.timeouts.connectMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(new SmtpClientError(`cannot connect to ${peer}: ${errorText(err)}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      // Errors reach the ReplyStream (or the TLS socket on top); this only keeps an error on the
      // raw socket while neither listens, e.g. mid-handshake, from being unhandled.
      socket.on('error', () => undefined);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** A TLS client handshake over `socket` (STARTTLS) or a new connection (implicit TLS). */
function handshake(socket: Socket | undefined, opts: ClientOptions, verify: boolean): Promise<TLSSocket> {
  const peer = peerName(opts);
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({
      ...(socket ? { socket } : { host: opts.address, port: opts.port }),
      // SNI and the certificate check use the peer's name, never the address we connected to.
      ...(isIP(opts.host) === 0 ? { servername: opts.host } : {}),
      host: opts.host,
      rejectUnauthorized: verify,
      ...(opts.ca ? { ca: [...opts.ca] } : {}),
    });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new TlsHandshakeError(`TLS handshake with ${peer} timed out`));
    }, opts.timeouts.greetingMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      secure.destroy();
      reject(new TlsHandshakeError(`TLS handshake with ${peer} failed: ${errorText(err)}`, { cause: err }));
    };
    secure.on('error', () => undefined); // after the handshake, the ReplyStream reports errors
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeListener('error', onError);
      resolve(secure);
    });
  });
}

function sessionTls(s: TLSSocket, verified: boolean): SessionTls {
  return { version: s.getProtocol() ?? 'unknown', cipher: s.getCipher().name, verified };
}
