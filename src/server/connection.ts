// One SMTP client connection: wires a socket to one SmtpSession. The session is pure protocol;
// this file owns the SMTP side of the socket (the greeting delay, command and data timers,
// backpressure and the log line), and client-socket.ts what every protocol shares (TLS, close).

import type net from 'node:net';
import { logConnection, logMessage } from '../log/mail-log.js';
import type { ListenerKind } from '../mail/envelope.js';
import type { SessionIo, TransactionEvent } from '../smtp/session-host.js';
import { SmtpSession } from '../smtp/session.js';
import { ClientSocket } from './client-socket.js';
import type { ConnectionSettings } from './connection-settings.js';

export class Connection extends ClientSocket implements SessionIo {
  private session: SmtpSession | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private idleMs = 0;
  private greetingTimer: NodeJS.Timeout | undefined;

  constructor(
    socket: net.Socket,
    clientIp: string,
    clientPort: number,
    readonly listener: ListenerKind,
    private readonly settings: ConnectionSettings,
    private readonly onFinished: (c: Connection) => void,
  ) {
    super(socket, clientIp, clientPort, settings);
  }

  /** Starts the dialogue: implicit TLS first on the submissions listener (RFC 8314 3.3). */
  open(): void {
    if (this.listener === 'submissions') void this.openImplicitTls((secure) => this.begin(secure));
    else this.begin(this.socket);
  }

  /** Server stopping: idle sessions get 421 and close; one in DATA finishes its message first. */
  shutdown(): void {
    this.outcome ??= 'shutdown';
    if (this.session && this.greetingTimer === undefined) this.session.shutdown();
    else this.destroy();
  }

  // SessionIo: what the session does to its connection (startTls, close, pause and resume: ClientSocket).

  write(data: string): void {
    if (!this.socket.writable) return;
    this.socket.write(data);
    // The client's turn starts when our reply goes out; time it from here (RFC 5321 4.5.3.2).
    this.armIdleTimer();
  }

  // ClientSocket's hooks.

  protected received(chunk: Buffer): void {
    const session = this.session;
    if (!session) return;
    session.receive(chunk);
    this.armIdleTimer();
  }

  protected hungUp(): void {
    // Nothing to undo: a transaction not finished by the final dot was never accepted.
  }

  protected pauseTimers(): void {
    this.clearIdleTimer();
  }

  protected resumeTimers(): void {
    this.armIdleTimer();
  }

  protected finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearIdleTimer();
    clearTimeout(this.greetingTimer);
    this.clearLinger();
    this.greetingTimer = undefined;
    const stats = this.session?.stats;
    logConnection(this.settings.logger, {
      clientIp: this.clientIp,
      clientPort: this.clientPort,
      listener: this.listener,
      helo: stats?.helo,
      tls: this.tls,
      messages: stats?.messagesAccepted ?? 0,
      rejected: stats?.messagesRejected ?? 0,
      errors: stats?.errors ?? 0,
      durationMs: Math.round(performance.now() - this.startedAt),
      outcome: this.outcome ?? 'closed',
    });
    this.onFinished(this);
  }

  // Internals.

  private begin(socket: net.Socket): void {
    const session = new SmtpSession({
      config: this.settings.session,
      clientIp: this.clientIp,
      clientPort: this.clientPort,
      policy: this.settings.policy,
      authGuard: this.settings.authGuard,
      sink: this.settings.sink,
      io: this,
      events: { transaction: this.onTransaction },
      logger: this.settings.logger,
      ...(this.tls ? { tls: this.tls } : {}),
    });
    this.session = session;
    // Attached before the greeting: what an early talker sends during the delay goes to the
    // session, which refuses it once start() runs (a cheap test against spam bots).
    this.attach(socket);
    const delay = this.settings.greetingDelayMs;
    if (delay > 0) {
      this.greetingTimer = setTimeout(() => {
        this.greetingTimer = undefined;
        session.start();
        this.armIdleTimer();
      }, delay);
    } else {
      session.start();
      this.armIdleTimer();
    }
  }

  private readonly onTransaction = (event: TransactionEvent): void => {
    logMessage(this.settings.logger, { clientIp: this.clientIp, helo: this.session?.stats.helo, tls: this.tls }, event);
  };

  private readonly onIdle = (): void => {
    this.idleTimer = undefined;
    this.outcome ??= 'timeout';
    this.session?.timeout();
  };

  private armIdleTimer(): void {
    const session = this.session;
    if (!session || session.closed || this.paused || this.upgrading || this.finished) return;
    if (this.greetingTimer !== undefined) return;
    const ms = session.waitingFor === 'data' ? this.settings.dataTimeoutMs : this.settings.commandTimeoutMs;
    if (this.idleTimer !== undefined && this.idleMs === ms) {
      this.idleTimer.refresh();
      return;
    }
    clearTimeout(this.idleTimer);
    this.idleMs = ms;
    this.idleTimer = setTimeout(this.onIdle, ms);
  }

  private clearIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
