// One POP3 client connection: wires a socket to one Pop3Session, as connection.ts does for SMTP.
// The session is pure protocol; this file owns the POP3 side of the socket (the autologout timer
// and the one log line per session), and client-socket.ts what every protocol shares (TLS, close).

import type net from 'node:net';
import type { MaildropOpener, Pop3Config, Pop3Guard, Pop3Io } from '../pop3/pop3-host.js';
import { Pop3Session } from '../pop3/session.js';
import { ClientSocket, type SocketSettings } from './client-socket.js';

export interface Pop3ConnectionSettings extends SocketSettings {
  readonly session: Pop3Config;
  readonly maildrops: MaildropOpener;
  readonly checkPassword: (user: string, password: string) => Promise<string | undefined>;
  /** One per server, shared with SMTP AUTH: one failure count per IP and account. */
  readonly guard: Pop3Guard;
  /** RFC 1939 3: the autologout timer, at least 10 minutes. */
  readonly idleTimeoutMs: number;
}

export class Pop3Connection extends ClientSocket implements Pop3Io {
  private session: Pop3Session | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    socket: net.Socket,
    clientIp: string,
    clientPort: number,
    readonly listener: 'pop3' | 'pop3s',
    private readonly settings: Pop3ConnectionSettings,
    private readonly onFinished: (c: Pop3Connection) => void,
  ) {
    super(socket, clientIp, clientPort, settings, listener === 'pop3');
  }

  /** Starts the dialogue: implicit TLS first on pop3s (RFC 8314 3.3). */
  open(): void {
    if (this.listener === 'pop3s') void this.openImplicitTls((secure) => this.begin(secure));
    else this.begin(this.socket);
  }

  /** Server stopping: the session ends without UPDATE (nothing is deleted) and closes. */
  shutdown(): void {
    this.outcome ??= 'shutdown';
    if (this.session) this.session.shutdown();
    else this.destroy();
  }

  // Pop3Io (startTls, close, pause and resume: ClientSocket).

  write(data: string | Buffer): void {
    if (!this.socket.writable) return;
    this.socket.write(data);
    this.armIdleTimer();
  }

  // ClientSocket's hooks.

  protected received(chunk: Buffer): void {
    if (!this.session) return;
    this.session.receive(chunk);
    this.armIdleTimer();
  }

  protected hungUp(): void {
    // A dropped connection deletes nothing (RFC 1939 6: only QUIT enters UPDATE).
    this.session?.disconnected();
  }

  protected pauseTimers(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  protected resumeTimers(): void {
    this.armIdleTimer();
  }

  protected finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.pauseTimers();
    this.clearLinger();
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

  // Internals.

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

  private readonly onIdle = (): void => {
    this.idleTimer = undefined;
    this.outcome ??= 'timeout';
    // RFC 1939 3: the autologout timer ends the session without entering UPDATE.
    this.session?.timeout();
  };

  private armIdleTimer(): void {
    if (!this.session || this.paused || this.upgrading || this.finished) return;
    if (this.idleTimer) this.idleTimer.refresh();
    else this.idleTimer = setTimeout(this.onIdle, this.settings.idleTimeoutMs);
  }
}
