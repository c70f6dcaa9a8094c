// One POP3 client connection: wires a socket to one Pop3Session, as connection.ts does for SMTP.
// The session is pure protocol; this file owns the socket: the idle timer, the TLS upgrade
// (implicit on pop3s, STLS on pop3) and the one log line per session.

import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { TlsInfo } from '../mail/tls-info.js';
import type { MaildropOpener, Pop3Config, Pop3Guard, Pop3Io } from '../pop3/pop3-host.js';
import { Pop3Session } from '../pop3/session.js';
import { tlsHandshake, tlsInfoOf, type HandshakeCertificates } from '../tls/tls-handshake.js';

/** After we end() a connection, how long the client gets to close its side before we cut it. */
const LINGER_MS = 5_000;

export interface Pop3ConnectionSettings {
  readonly session: Pop3Config;
  readonly maildrops: MaildropOpener;
  readonly checkPassword: (user: string, password: string) => Promise<string | undefined>;
  /** One per server, shared with SMTP AUTH: one failure count per IP and account. */
  readonly guard: Pop3Guard;
  readonly certificates: HandshakeCertificates;
  /** RFC 1939 3: the autologout timer, at least 10 minutes. */
  readonly idleTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly logger: Logger;
}

type Outcome = 'closed' | 'disconnected' | 'timeout' | 'tls-failed' | 'shutdown' | 'error';

export class Pop3Connection implements Pop3Io {
  private socket: net.Socket;
  private session: Pop3Session | undefined;
  private tls: TlsInfo | undefined;
  private outcome: Outcome | undefined;
  private upgrading = false;
  private finished = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = performance.now();

  constructor(
    socket: net.Socket,
    readonly clientIp: string,
    readonly clientPort: number,
    readonly listener: 'pop3' | 'pop3s',
    private readonly settings: Pop3ConnectionSettings,
    private readonly onFinished: (c: Pop3Connection) => void,
  ) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', this.onError);
  }

  /** Starts the dialogue: implicit TLS first on pop3s (RFC 8314 3.3). */
  open(): void {
    if (this.listener === 'pop3s') void this.openImplicitTls();
    else this.begin(this.socket);
  }

  /** Server stopping: the session ends without UPDATE (nothing is deleted) and closes. */
  shutdown(): void {
    this.outcome ??= 'shutdown';
    if (this.session) this.session.shutdown();
    else this.destroy();
  }

  destroy(outcome: Outcome = 'shutdown'): void {
    this.outcome ??= outcome;
    this.socket.destroy();
    this.finish();
  }

  // Pop3Io

  write(data: string | Buffer): void {
    if (!this.socket.writable) return;
    this.socket.write(data);
    this.armIdleTimer();
  }

  async startTls(): Promise<TlsInfo> {
    const plain = this.socket;
    this.upgrading = true;
    this.clearIdleTimer();
    plain.off('data', this.onData);
    plain.off('close', this.onClose);
    let secure: tls.TLSSocket;
    try {
      secure = await tlsHandshake(plain, this.settings.certificates, this.settings.handshakeTimeoutMs);
    } catch (err) {
      this.handshakeFailed(err);
      throw err;
    }
    this.upgrading = false;
    const info = this.adopt(secure);
    if (this.finished) {
      secure.destroy();
      throw new Error('connection closed during the TLS handshake');
    }
    this.attach(secure);
    this.armIdleTimer();
    return info;
  }

  close(): void {
    this.outcome ??= 'closed';
    this.clearIdleTimer();
    const socket = this.socket;
    if (socket.destroyed || this.lingerTimer !== undefined) return;
    socket.end();
    this.lingerTimer = setTimeout(() => socket.destroy(), LINGER_MS);
  }

  // Internals

  private async openImplicitTls(): Promise<void> {
    this.upgrading = true;
    let secure: tls.TLSSocket;
    try {
      secure = await tlsHandshake(this.socket, this.settings.certificates, this.settings.handshakeTimeoutMs);
    } catch (err) {
      this.handshakeFailed(err);
      return;
    }
    this.upgrading = false;
    this.adopt(secure);
    if (this.finished) {
      secure.destroy();
      return;
    }
    try {
      this.begin(secure);
    } catch (err) {
      this.settings.logger.error({ err, client_ip: this.clientIp }, 'cannot start a POP3 session');
      this.destroy('error');
    }
  }

  private begin(socket: net.Socket): void {
    const { settings } = this;
    this.session = new Pop3Session({
      config: settings.session,
      clientIp: this.clientIp,
      io: this,
      maildrops: settings.maildrops,
      checkPassword: settings.checkPassword,
      guard: settings.guard,
      logger: settings.logger,
      ...(this.tls ? { tls: this.tls } : {}),
    });
    this.attach(socket);
    this.session.start();
    this.armIdleTimer();
  }

  private adopt(secure: tls.TLSSocket): TlsInfo {
    this.tls = tlsInfoOf(secure);
    this.socket = secure;
    secure.on('error', this.onError);
    return this.tls;
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (!this.session || this.upgrading) return;
    this.session.receive(chunk);
    this.armIdleTimer();
  };

  private readonly onClose = (): void => {
    this.outcome ??= 'disconnected';
    // A dropped connection deletes nothing (RFC 1939 6: only QUIT enters UPDATE).
    this.session?.disconnected();
    this.finish();
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    const reset = err.code === 'ECONNRESET' || err.code === 'EPIPE';
    this.outcome ??= reset ? 'disconnected' : 'error';
    this.settings.logger.debug({ client_ip: this.clientIp, err: err.message, code: err.code }, 'socket error');
  };

  private readonly onIdle = (): void => {
    this.idleTimer = undefined;
    this.outcome ??= 'timeout';
    // RFC 1939 3: the autologout timer ends the session without entering UPDATE.
    this.session?.timeout();
  };

  private handshakeFailed(err: unknown): void {
    this.upgrading = false;
    this.outcome ??= 'tls-failed';
    this.settings.logger.debug({ client_ip: this.clientIp, err: err instanceof Error ? err.message : String(err) }, 'TLS handshake failed');
    this.finish();
  }

  private armIdleTimer(): void {
    if (!this.session || this.upgrading || this.finished) return;
    if (this.idleTimer) this.idleTimer.refresh();
    else this.idleTimer = setTimeout(this.onIdle, this.settings.idleTimeoutMs);
  }

  private clearIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearIdleTimer();
    clearTimeout(this.lingerTimer);
    const stats = this.session?.stats;
    this.settings.logger.info(
      {
        client_ip: this.clientIp,
        client_port: this.clientPort,
        listener: this.listener,
        account: stats?.account ?? null,
        tls_version: this.tls?.version ?? null,
        tls_cipher: this.tls?.cipher ?? null,
        retrieved: stats?.retrieved ?? 0,
        deleted: stats?.deleted ?? 0,
        commands: stats?.commands ?? 0,
        errors: stats?.errors ?? 0,
        duration_ms: Math.round(performance.now() - this.startedAt),
        outcome: this.outcome ?? 'closed',
      },
      'pop3 connection',
    );
    this.onFinished(this);
  }
}
