// One client connection: wires a socket to one SmtpSession. The session is pure protocol; this
// file owns everything about the socket: timers, backpressure, the TLS upgrade and the log line.

import type net from 'node:net';
import type tls from 'node:tls';
import { logConnection, logMessage, type ConnectionOutcome } from '../log/mail-log.js';
import type { ListenerKind } from '../mail/envelope.js';
import type { TlsInfo } from '../mail/tls-info.js';
import type { SessionIo, TransactionEvent } from '../smtp/session-host.js';
import { SmtpSession } from '../smtp/session.js';
import type { ConnectionSettings } from './connection-settings.js';
import { tlsHandshake, tlsInfoOf } from '../tls/tls-handshake.js';

/** After we end() a connection, how long the client gets to close its side before we cut it. */
const LINGER_MS = 5_000;

export class Connection implements SessionIo {
  private socket: net.Socket;
  private session: SmtpSession | undefined;
  private tls: TlsInfo | undefined;
  private outcome: ConnectionOutcome | undefined;
  private paused = false;
  /** True while STARTTLS is in progress: the plain socket is no longer ours to read. */
  private upgrading = false;
  private finished = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private idleMs = 0;
  private greetingTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = performance.now();

  constructor(
    socket: net.Socket,
    readonly clientIp: string,
    readonly clientPort: number,
    readonly listener: ListenerKind,
    private readonly settings: ConnectionSettings,
    private readonly onFinished: (c: Connection) => void,
  ) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', this.onError);
  }

  /** Starts the dialogue: implicit TLS first on the submissions listener (RFC 8314 3.3). */
  open(): void {
    if (this.listener === 'submissions') void this.openImplicitTls();
    else this.begin(this.socket);
  }

  /** Server stopping: idle sessions get 421 and close; one in DATA finishes its message first. */
  shutdown(): void {
    this.outcome ??= 'shutdown';
    if (this.session && this.greetingTimer === undefined) this.session.shutdown();
    else this.destroy();
  }

  /** Cuts the connection now (end of the shutdown grace period, or a fault of ours). */
  destroy(outcome: ConnectionOutcome = 'shutdown'): void {
    this.outcome ??= outcome;
    this.socket.destroy();
    this.finish();
  }

  // SessionIo: what the session does to its connection.

  write(data: string): void {
    if (!this.socket.writable) return;
    this.socket.write(data);
    // The client's turn starts when our reply goes out; time it from here (RFC 5321 4.5.3.2).
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
      // Destroyed (shutdown grace ran out) while the handshake was in flight.
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

  pause(): void {
    this.paused = true;
    // A paused session is busy with what the client already sent: the client is not idle.
    this.clearIdleTimer();
    if (!this.upgrading) this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    if (!this.upgrading) this.socket.resume();
    this.armIdleTimer();
  }

  // Internals.

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
      // A fault in our own code must cost one connection, not the server.
      this.settings.logger.error({ err, client_ip: this.clientIp }, 'cannot start a session');
      this.destroy('error');
    }
  }

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

  /** From now on the connection talks through `secure`. */
  private adopt(secure: tls.TLSSocket): TlsInfo {
    this.tls = tlsInfoOf(secure);
    this.socket = secure;
    secure.on('error', this.onError);
    return this.tls;
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    // Listeners accept with pauseOnConnect; a 'data' listener alone does not start the flow then.
    if (!this.paused) socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    const session = this.session;
    if (!session || this.upgrading) return;
    session.receive(chunk);
    this.armIdleTimer();
  };

  private readonly onClose = (): void => {
    this.outcome ??= 'disconnected';
    this.finish();
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    // Resets and broken pipes are what clients do; they are not our errors.
    const reset = err.code === 'ECONNRESET' || err.code === 'EPIPE';
    this.outcome ??= reset ? 'disconnected' : 'error';
    this.settings.logger.debug({ client_ip: this.clientIp, err: err.message, code: err.code }, 'socket error');
  };

  private readonly onTransaction = (event: TransactionEvent): void => {
    logMessage(this.settings.logger, { clientIp: this.clientIp, helo: this.session?.stats.helo, tls: this.tls }, event);
  };

  private readonly onIdle = (): void => {
    this.idleTimer = undefined;
    this.outcome ??= 'timeout';
    this.session?.timeout();
  };

  private handshakeFailed(err: unknown): void {
    this.upgrading = false;
    this.outcome ??= 'tls-failed';
    this.settings.logger.debug(
      { client_ip: this.clientIp, err: err instanceof Error ? err.message : String(err) },
      'TLS handshake failed',
    );
    this.finish();
  }

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

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearIdleTimer();
    clearTimeout(this.greetingTimer);
    clearTimeout(this.lingerTimer);
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
}
