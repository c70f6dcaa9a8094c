// One SMTP connection of a probe, over the client pieces the delivery code uses (the reply
// stream and the connect helper of src/delivery/client/). Unlike a delivery session it is a
// tool for asking odd questions: raw writes (pipelined or deliberately malformed), a wait that may
// end in silence, and a TLS handshake with the version limits and leniency a probe needs.
//
// Every connection and command goes through the ProbeBudget, which bounds how much one probe may
// do to a server and records what it sent for the report.

import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type SecureVersion, type TLSSocket } from 'node:tls';
import type { Reply } from '../mail/reply.js';
import { connectSocket } from '../delivery/client/client-session.js';
import { errorText, ReplyStream, SmtpClientError } from '../delivery/client/reply-stream.js';

export interface ProbeTarget {
  /** The name probed: SNI and the certificate check use it. */
  readonly host: string;
  readonly address: string;
  readonly port: number;
}

/** Limits on what one probe does, and the record of what it did. */
export class ProbeBudget {
  connections = 0;
  commands = 0;
  readonly recipientsTried: string[] = [];
  readonly messages: { to: string; port: number; purpose: string }[] = [];

  constructor(
    /** Wait at most this long for any one reply or handshake. */
    readonly replyTimeoutMs: number,
    /** Connections per probe, all ports together. */
    readonly maxConnections: number,
    /** No new connection after this time (epoch ms): the whole probe ends in bounded time. */
    readonly deadline: number,
  ) {}

  takeConnection(target: ProbeTarget): void {
    if (Date.now() > this.deadline) {
      throw new SmtpClientError(`the probe's time limit is reached; not connecting to ${target.address}:${target.port} again`);
    }
    if (this.connections >= this.maxConnections) {
      throw new SmtpClientError(`the probe's limit of ${this.maxConnections} connections is used up; not connecting to ${target.address}:${target.port} again`);
    }
    this.connections++;
  }
}

export interface TlsDetails {
  readonly version: string;
  readonly cipher: string;
  /** The chain verified against the trust anchors (system's or --ca). */
  readonly authorized: boolean;
  readonly authorizationError: string | undefined;
  readonly certificate: PeerCertificate | undefined;
}

export interface TlsLimits {
  /** Offer only this protocol version (min = max), to learn whether the server accepts it. */
  readonly version?: SecureVersion;
  readonly ca?: readonly (string | Buffer)[] | undefined;
}

export class ProbeConnection {
  /** When the TCP connection was up, and how long the greeting took after that. */
  greetingMs = 0;
  tls: TlsDetails | undefined;

  private constructor(
    readonly target: ProbeTarget,
    private socket: Socket,
    private readonly replies: ReplyStream,
    private readonly budget: ProbeBudget,
    readonly greeting: Reply,
  ) {}

  /** Connects (with implicit TLS when asked) and reads the greeting, whatever its code. */
  static async open(target: ProbeTarget, budget: ProbeBudget, implicitTls?: TlsLimits): Promise<ProbeConnection> {
    budget.takeConnection(target);
    const peer = `${target.address}:${target.port}`;
    let socket: Socket = await connectSocket({ kind: 'tcp', address: target.address, port: target.port }, peer, budget.replyTimeoutMs);
    let tls: TlsDetails | undefined;
    const replies = new ReplyStream(peer);
    try {
      if (implicitTls) {
        const secure = await handshake(socket, target, implicitTls, budget.replyTimeoutMs);
        socket = secure;
        tls = tlsDetails(secure);
      }
      const connectedAt = performance.now();
      replies.attach(socket);
      const greeting = await replies.next(budget.replyTimeoutMs, 'the greeting');
      const conn = new ProbeConnection(target, socket, replies, budget, greeting);
      conn.greetingMs = Math.round(performance.now() - connectedAt);
      conn.tls = tls;
      return conn;
    } catch (err) {
      replies.fail(err instanceof Error ? err : new Error(String(err)));
      socket.destroy();
      throw err;
    }
  }

  get localAddress(): string {
    return this.socket.localAddress ?? '127.0.0.1';
  }

  /** "[192.0.2.1]" or "[IPv6:2001:db8::1]": our EHLO name, an address literal (RFC 5321 4.1.3). */
  get heloName(): string {
    const a = this.localAddress.replace(/^::ffff:/, '');
    return isIP(a) === 6 ? `[IPv6:${a}]` : `[${a}]`;
  }

  /**
   * Sends one command and reads its reply. `shownAs` names it in a timeout error instead of the
   * line itself, which may hold a credential.
   */
  async command(line: string, shownAs = line): Promise<Reply> {
    await this.write(`${line}\r\n`);
    return this.next(`the reply to ${shownAs.split(' ')[0]}`);
  }

  /** Raw bytes; counted as one command. */
  async write(data: string | Buffer): Promise<void> {
    this.budget.commands++;
    await new Promise<void>((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(new SmtpClientError(`cannot send to ${this.target.address}: ${errorText(err)}`)) : resolve()));
    });
  }

  next(waitingFor = 'a reply'): Promise<Reply> {
    return this.replies.next(this.budget.replyTimeoutMs, waitingFor);
  }

  /**
   * A reply if one comes within `ms`, else undefined (the connection stays usable). Used where
   * silence is the right answer: the server is still reading DATA, or waits for a command.
   */
  async replyWithin(ms: number): Promise<Reply | undefined> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (this.replies.hasUnreadInput) return this.next();
      if (this.replies.failed) return this.next();
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.replies.hasUnreadInput ? this.next() : undefined;
  }

  /** Whether the server sent anything not yet read. */
  get hasUnreadInput(): boolean {
    return this.replies.hasUnreadInput;
  }

  /** EHLO; the keywords (upper case) and their parameters when it is accepted. */
  async ehlo(): Promise<{ reply: Reply; extensions: Map<string, string> }> {
    const reply = await this.command(`EHLO ${this.heloName}`);
    return { reply, extensions: reply.code === 250 ? parseEhlo(reply) : new Map() };
  }

  /** The TLS handshake after a 220 to STARTTLS (RFC 3207). */
  async startTls(limits: TlsLimits = {}): Promise<TlsDetails> {
    this.replies.detach();
    const secure = await handshake(this.socket, this.target, limits, this.budget.replyTimeoutMs);
    this.socket = secure;
    this.tls = tlsDetails(secure);
    this.replies.attach(secure);
    return this.tls;
  }

  /** RFC 9266 tls-exporter channel binding, for SCRAM-*-PLUS; only defined for TLS 1.3. */
  channelBinding(): Buffer | undefined {
    const s = this.socket as TLSSocket;
    if (this.tls?.version !== 'TLSv1.3' || typeof s.exportKeyingMaterial !== 'function') return undefined;
    return s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
  }

  /** QUIT, briefly; never throws. */
  async quit(): Promise<void> {
    if (!this.replies.failed) await this.command('QUIT').catch(() => undefined);
    this.close();
  }

  close(): void {
    this.replies.fail(new SmtpClientError('probe connection closed'));
    this.socket.destroy();
  }
}

/** EHLO keywords (RFC 5321 4.1.1.1): the first line is the greeting, each further one "KEYWORD params". */
export function parseEhlo(r: Reply): Map<string, string> {
  const ext = new Map<string, string>();
  for (const line of r.lines.slice(1)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line.trim());
    if (m) ext.set((m[1] ?? '').toUpperCase(), (m[2] ?? '').trim());
  }
  return ext;
}

/**
 * A handshake that never rejects a certificate (the probe reports on it instead) and, with a
 * version limit, offers only that version. OpenSSL 3 refuses TLS 1.0 and 1.1 at its default
 * security level 1 (their handshakes sign with SHA-1), so asking whether a server still accepts
 * them needs security level 0 on our side; the ciphers offered are otherwise OpenSSL's default.
 */
function handshake(socket: Socket, target: ProbeTarget, limits: TlsLimits, timeoutMs: number): Promise<TLSSocket> {
  const options: ConnectionOptions = {
    socket,
    ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
    rejectUnauthorized: false,
    ...(limits.ca ? { ca: [...limits.ca] } : {}),
    ...(limits.version ? { minVersion: limits.version, maxVersion: limits.version, ciphers: 'DEFAULT@SECLEVEL=0' } : {}),
  };
  return new Promise((resolve, reject) => {
    const secure = tlsConnect(options);
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new SmtpClientError(`TLS handshake with ${target.address}:${target.port} timed out`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      secure.destroy();
      reject(new SmtpClientError(`TLS handshake failed: ${errorText(err)}`, { cause: err }));
    };
    secure.on('error', () => undefined);
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeListener('error', onError);
      resolve(secure);
    });
  });
}

function tlsDetails(s: TLSSocket): TlsDetails {
  const cert = s.getPeerCertificate(true);
  const authorizationError = s.authorizationError === null || s.authorizationError === undefined ? undefined : String(s.authorizationError);
  return {
    version: s.getProtocol() ?? 'unknown',
    cipher: s.getCipher().name,
    authorized: s.authorized,
    authorizationError,
    certificate: cert && Object.keys(cert).length > 0 ? cert : undefined,
  };
}
