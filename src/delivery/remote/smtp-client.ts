// Our SMTP client (RFC 5321): one session with one peer, able to carry several transactions.
// open() connects, reads the greeting, says EHLO (HELO when EHLO is refused), and starts TLS as
// the TlsMode asks; send() (client/client-session.ts, shared with LMTP) runs one transaction and
// returns the peer's final word per recipient. A broken session throws SmtpClientError; replies,
// even refusals, are results, not errors.

import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { replyLine, type Reply } from '../../mail/reply.js';
import { ClientSession, connectSocket, type ClientTimeouts } from '../client/client-session.js';
import { errorText, ReplyStream, SmtpClientError } from '../client/reply-stream.js';

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
  /** Cuts the session wherever it is (connectSocket): the courier's stop at shutdown. */
  readonly signal?: AbortSignal | undefined;
}

export interface SessionTls {
  readonly version: string;
  readonly cipher: string;
  /** The certificate was checked against the host name. */
  readonly verified: boolean;
}

/** The handshake failed: opportunistic TLS falls back to plain text on a new connection. */
class TlsHandshakeError extends SmtpClientError {}

export class SmtpClientConnection extends ClientSession {
  private constructor(
    private readonly opts: ClientOptions,
    socket: Socket,
    replies: ReplyStream,
    private tlsInfo: SessionTls | undefined,
  ) {
    super({ peer: peerName(opts), name: opts.host, timeouts: opts.timeouts, logger: opts.logger, repliesAfterDot: 'one' }, socket, replies);
  }

  get tls(): SessionTls | undefined {
    return this.tlsInfo;
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
    let socket: Socket = await connectSocket({ kind: 'tcp', address: opts.address, port: opts.port }, peer, opts.timeouts.connectMs, opts.signal);
    let tlsInfo: SessionTls | undefined;
    try {
      if (mode.kind === 'implicit') {
        const secure = await handshake(socket, opts, mode.verify);
        socket = secure;
        tlsInfo = sessionTls(secure, mode.verify);
      }
      replies.attach(socket);
      const conn = new SmtpClientConnection(opts, socket, replies, tlsInfo);
      await conn.greet(mode);
      return conn;
    } catch (err) {
      replies.fail(err instanceof Error ? err : new Error(String(err)));
      socket.destroy();
      throw err;
    }
  }

  private async greet(mode: TlsMode): Promise<void> {
    await this.readGreeting();
    await this.helloOrHelo();
    if (mode.kind !== 'opportunistic' && mode.kind !== 'starttls') return;
    if (!this.ehlo.has('STARTTLS')) {
      if (mode.kind === 'starttls') throw new SmtpClientError(`${this.peer} does not offer STARTTLS, which is required`);
      return;
    }
    await this.startTls(mode.kind === 'starttls', mode.kind === 'starttls' && mode.verify);
  }

  /** EHLO, or HELO when the peer refuses EHLO with 5xx (RFC 5321 3.2: an old server). */
  private async helloOrHelo(): Promise<void> {
    const ehlo = await this.hello('EHLO', this.opts.heloName);
    if (ehlo.code === 250) return;
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
    await this.helloOrHelo();
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
}

function peerName(opts: { host: string; address: string; port: number }): string {
  return opts.host === opts.address ? `[${opts.address}]:${opts.port}` : `${opts.host}[${opts.address}]:${opts.port}`;
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
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
      // A session cut at shutdown (connectSocket) is no handshake failure to retry without TLS.
      reject(err instanceof SmtpClientError ? err : new TlsHandshakeError(`TLS handshake with ${peer} failed: ${errorText(err)}`, { cause: err }));
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
