// One SMTP client connection: wires a socket to one SmtpSession. The session is pure protocol;
// this file owns the SMTP side of the socket (the greeting delay, command and data timers,
// backpressure and the log line), and client-socket.ts what every protocol shares (TLS, close).

import type net from 'node:net';
import { describeDnsblError } from '../dns/dnsbl-answer.js';
import { logConnection, logMessage } from '../log/mail-log.js';
import { countBytesReceived, countReply, countTransaction, sessionsRefused } from '../metrics/metrics.js';
import { reply, type Reply } from '../mail/reply.js';
import type { DnsblVerdict } from '../policy/dnsbl-score.js';
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
  /** True while the greeting waits for the greeting delay or the DNS lists. */
  private waitingToGreet = false;

  constructor(
    socket: net.Socket,
    clientIp: string,
    clientPort: number,
    readonly listener: ListenerKind,
    private readonly settings: ConnectionSettings,
    private readonly onFinished: (c: Connection) => void,
  ) {
    super(socket, clientIp, clientPort, settings, listener !== 'submissions');
  }

  /** Starts the dialogue: implicit TLS first on the submissions listener (RFC 8314 3.3). */
  open(): void {
    if (this.listener === 'submissions') void this.openImplicitTls((secure) => this.begin(secure));
    else this.begin(this.socket);
  }

  /** Server stopping: idle sessions get 421 and close; one in DATA finishes its message first. */
  shutdown(): void {
    this.outcome ??= 'shutdown';
    if (this.session && !this.waitingToGreet) this.session.shutdown();
    else this.destroy();
  }

  // SessionIo: what the session does to its connection (startTls, close, pause and resume: ClientSocket).

  write(data: string): void {
    if (!this.socket.writable) return;
    this.sendReply(data);
    // The client's turn starts when our reply goes out; time it from here (RFC 5321 4.5.3.2).
    this.armIdleTimer();
  }

  // ClientSocket's hooks.

  protected received(chunk: Buffer): void {
    const session = this.session;
    if (!session) return;
    countBytesReceived(this.listener, chunk.length);
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
      authenticator: this.settings.authenticator,
      io: this,
      events: { transaction: this.onTransaction, reply: this.onReply },
      logger: this.settings.logger,
      ...(this.tls ? { tls: this.tls } : {}),
    });
    this.session = session;
    // Attached before the greeting: what an early talker sends during the delay goes to the
    // session, which refuses it once start() runs (a cheap test against spam bots).
    this.attach(socket);
    const delay = this.settings.greetingDelayMs;
    const screening = this.settings.screen?.check(this.clientIp);
    if (delay === 0 && screening === undefined) {
      session.start();
      this.armIdleTimer();
      return;
    }
    // The greeting waits for the delay and the DNS lists both; they run side by side.
    this.waitingToGreet = true;
    const delayed = new Promise<void>((resolve) => {
      this.greetingTimer = setTimeout(resolve, delay);
    });
    void Promise.all([delayed, screening]).then(
      ([, verdict]) => this.greet(session, verdict),
      (err: unknown) => {
        this.settings.logger.error({ err, client_ip: this.clientIp }, 'connect-time screen failed');
        this.greet(session, undefined);
      },
    );
  }

  private greet(session: SmtpSession, verdict: DnsblVerdict | undefined): void {
    this.greetingTimer = undefined;
    this.waitingToGreet = false;
    if (this.finished) return;
    if (verdict) this.logVerdict(verdict);
    if (session.talkedBeforeGreeting) {
      this.outcome ??= 'pregreet';
      sessionsRefused.inc({ listener: this.listener, reason: 'pregreet' });
    } else if (verdict?.blocked) {
      this.outcome ??= 'dnsbl';
      sessionsRefused.inc({ listener: this.listener, reason: 'dnsbl' });
      const lists = verdict.blockedBy.join(', ');
      session.refuse(reply(554, '5.7.1', `${this.settings.session.hostname} Service unavailable; client [${this.clientIp}] blocked using ${lists}`));
      return;
    }
    session.start(verdict ? { dnsAllowlisted: verdict.allowlisted } : undefined);
    this.armIdleTimer();
  }

  /** One line when a list said anything but "not listed": what each said, and the sum. */
  private logVerdict(v: DnsblVerdict): void {
    if (v.hits.length === 0 && v.errors.length === 0 && v.unanswered.length === 0) return;
    const line = {
      client_ip: this.clientIp,
      score: v.score,
      blocked: v.blocked,
      listed: v.hits.map((h) => `${h.site.text}: ${h.codes.join(' ')}`),
      list_errors: v.errors.map((e) => `${e.site.zone}: ${e.codes.map(describeDnsblError).join('; ')}`),
      unanswered: v.unanswered.map((u) => `${u.site.zone}: ${u.reason}`),
    };
    // A list's error code means our resolver setup is wrong (e.g. a public resolver): the operator must act.
    if (v.errors.length > 0) this.settings.logger.warn(line, 'dnsbl list error, not a listing');
    else this.settings.logger.info(line, 'dnsbl');
  }

  private readonly onReply = (r: Reply): void => {
    countReply(this.listener, r.code, r.enhanced);
  };

  private readonly onTransaction = (event: TransactionEvent): void => {
    countTransaction(this.listener, event.outcome.code < 400);
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
    if (this.waitingToGreet) return;
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
