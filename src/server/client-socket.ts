// What every client connection does with its socket, whatever the protocol: TLS from the first
// byte (submissions, pop3s) or after the protocol's go-ahead (STARTTLS, STLS), a close that lets
// the client hang up first, and the bookkeeping of how the connection ended. connection.ts (SMTP)
// and pop3-connection.ts extend it with their session, timers and log line.

import { tlsHandshakeFailures } from '../metrics/metrics.js';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { ConnectionOutcome } from '../log/mail-log.js';
import type { TlsInfo } from '../mail/tls-info.js';
import { tlsHandshake, tlsInfoOf, type HandshakeCertificates } from '../tls/tls-handshake.js';
import { hasSharedReads, setReader, withSharedReads } from './shared-reads.js';

/** After we end() a connection, how long the client gets to close its side before we cut it. */
const LINGER_MS = 5_000;

// Replies wait for the end of the event loop's turn and then go out back to back.
//
// Each write to a client that sleeps in epoll_wait wakes it, and on this machine (a VM) a wakeup
// is an interprocessor interrupt: at a hundred sessions, waking the client inside our writes
// (sock_def_readable) was 9.3 % of the event loop thread's CPU (perf), the replies written one by
// one between the processing of the next reads, each after the client had gone back to sleep.
// Written together after the turn's reads, the later writes find the client awake: 1.5 %, and
// the client spends less too. A reply waits at most for the rest of this turn's callbacks;
// setImmediate runs once the poll phase has run every ready one.

/** Connections with replies waiting for the end of this turn of the event loop. */
let waiting: ClientSocket[] = [];
let flushScheduled = false;

function flushWaiting(): void {
  const list = waiting;
  waiting = [];
  flushScheduled = false;
  for (const connection of list) connection.flushReplies();
}

export interface SocketSettings {
  readonly certificates: HandshakeCertificates;
  /** How long to wait for a TLS handshake to complete. */
  readonly handshakeTimeoutMs: number;
  readonly logger: Logger;
}

export abstract class ClientSocket {
  protected socket: net.Socket;
  protected tls: TlsInfo | undefined;
  protected outcome: ConnectionOutcome | undefined;
  /** True while a handshake is in progress: the plain socket is no longer ours to read. */
  protected upgrading = false;
  protected finished = false;
  /** The listener the connection came in on: what its metrics are labelled with. */
  abstract readonly listener: string;
  /** The session asked for a break in reading (too much input waits unprocessed). */
  protected paused = false;
  protected readonly startedAt = performance.now();
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Replies not yet handed to the socket: they go out together after this turn's reads. */
  private replies = '';

  /** `plainFirst`: the protocol starts in plain text (no implicit TLS); it is read through shared-reads.ts. */
  protected constructor(
    accepted: net.Socket,
    readonly clientIp: string,
    readonly clientPort: number,
    private readonly socketSettings: SocketSettings,
    plainFirst: boolean,
  ) {
    const socket = plainFirst ? withSharedReads(accepted) : accepted;
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', this.onError);
  }

  /**
   * Bytes from the client, for the session. They may be valid only until this returns (the
   * shared read buffer, shared-reads.ts): what the session keeps, it copies.
   */
  protected abstract received(chunk: Buffer): void;
  /** The client hung up (or the socket was destroyed). */
  protected abstract hungUp(): void;
  /** Called once, however the connection ended: timers off, the log line, the reception told. */
  protected abstract finish(): void;
  /** The connection's own timers stop while a handshake runs and restart after it. */
  protected abstract pauseTimers(): void;
  protected abstract resumeTimers(): void;
  /** Stops reading from the client; a paused session is busy with what the client already sent. */
  pause(): void {
    this.paused = true;
    // The client is not idle meanwhile: its timers wait too.
    this.pauseTimers();
    if (!this.upgrading) this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    if (!this.upgrading) this.socket.resume();
    this.resumeTimers();
  }

  /**
   * Queues a reply for the end of this turn of the event loop. Whatever else the connection does
   * to its socket (close, destroy, STARTTLS) hands the queued replies over first.
   */
  protected sendReply(data: string): void {
    if (this.replies === '') {
      waiting.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushWaiting);
      }
    }
    this.replies += data;
  }

  /** Hands the queued replies to the socket now. */
  flushReplies(): void {
    const data = this.replies;
    if (data === '') return;
    this.replies = '';
    if (this.socket.writable) this.socket.write(data);
  }

  /** Cuts the connection now (end of the shutdown grace period, or a fault of ours). */
  destroy(outcome: ConnectionOutcome = 'shutdown'): void {
    this.outcome ??= outcome;
    this.flushReplies();
    this.socket.destroy();
    this.finish();
  }

  /** Ends the connection after pending writes are flushed; the client gets LINGER_MS to close. */
  close(): void {
    this.outcome ??= 'closed';
    this.pauseTimers();
    const socket = this.socket;
    if (socket.destroyed || this.lingerTimer !== undefined) return;
    this.flushReplies();
    socket.end();
    this.lingerTimer = setTimeout(() => socket.destroy(), LINGER_MS);
  }

  /**
   * The upgrade after the protocol's go-ahead ("220 Ready to start TLS", "+OK Begin TLS") was
   * written: the plain socket is read no more, so nothing pipelined behind the command reaches
   * the session (RFC 3207 4.2, RFC 2595 4).
   */
  async startTls(): Promise<TlsInfo> {
    this.flushReplies();
    const plain = this.socket;
    this.upgrading = true;
    this.pauseTimers();
    plain.off('data', this.onData);
    setReader(plain, undefined);
    plain.off('close', this.onClose);
    let secure: tls.TLSSocket;
    try {
      secure = await tlsHandshake(plain, this.socketSettings.certificates, this.socketSettings.handshakeTimeoutMs);
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
    this.resumeTimers();
    return info;
  }

  /** TLS from the first byte (RFC 8314 3.3), then `begin` on the secure socket. */
  protected async openImplicitTls(begin: (socket: net.Socket) => void): Promise<void> {
    this.upgrading = true;
    let secure: tls.TLSSocket;
    try {
      secure = await tlsHandshake(this.socket, this.socketSettings.certificates, this.socketSettings.handshakeTimeoutMs);
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
      begin(secure);
    } catch (err) {
      // A fault in our own code must cost one connection, not the server.
      this.socketSettings.logger.error({ err, client_ip: this.clientIp }, 'cannot start a session');
      this.destroy('error');
    }
  }

  protected attach(socket: net.Socket): void {
    if (hasSharedReads(socket)) setReader(socket, this.onData);
    else socket.on('data', this.onData);
    socket.on('close', this.onClose);
    // Listeners accept with pauseOnConnect; a 'data' listener alone does not start the flow then.
    if (!this.paused) socket.resume();
  }

  protected clearLinger(): void {
    clearTimeout(this.lingerTimer);
  }

  /** From now on the connection talks through `secure`. */
  private adopt(secure: tls.TLSSocket): TlsInfo {
    this.tls = tlsInfoOf(secure);
    this.socket = secure;
    secure.on('error', this.onError);
    return this.tls;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.upgrading) return;
    this.received(chunk);
  };

  private readonly onClose = (): void => {
    this.outcome ??= 'disconnected';
    this.hungUp();
    this.finish();
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    // Resets and broken pipes are what clients do; they are not our errors.
    const reset = err.code === 'ECONNRESET' || err.code === 'EPIPE';
    this.outcome ??= reset ? 'disconnected' : 'error';
    this.socketSettings.logger.debug({ client_ip: this.clientIp, err: err.message, code: err.code }, 'socket error');
  };

  private handshakeFailed(err: unknown): void {
    this.upgrading = false;
    this.outcome ??= 'tls-failed';
    tlsHandshakeFailures.inc({ listener: this.listener });
    this.socketSettings.logger.debug(
      { client_ip: this.clientIp, err: err instanceof Error ? err.message : String(err) },
      'TLS handshake failed',
    );
    this.finish();
  }
}
