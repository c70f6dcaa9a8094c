// Admission and bookkeeping of connections: the connection rates and limits, the set of open
// connections, and ending them all at shutdown.

import type net from 'node:net';
import type { Logger } from 'pino';
import { logConnection } from '../log/mail-log.js';
import { connectionsOpened, sessionsRefused } from '../metrics/metrics.js';
import type { ClientRateLimits } from '../policy/client-rate.js';
import type { ConnectionLimiter } from '../policy/connection-limiter.js';
import type { ListenerKind } from '../mail/envelope.js';
import { formatReply, reply } from '../mail/reply.js';
import { Connection } from './connection.js';
import type { ConnectionSettings } from './connection-settings.js';
import { isPop3, isWeb, type ServiceKind } from './listeners.js';
import { MetricsConnection, type MetricsService } from './metrics-service.js';
import { Pop3Connection, type Pop3ConnectionSettings } from './pop3-connection.js';
import { WebConnection, type WebConnectionSettings } from '../web/web-connection.js';

export interface ReceptionSettings {
  readonly hostname: string;
  readonly limiter: ConnectionLimiter;
  /** New connections per client per minute (SMTP and POP3; HTTP has its own limits). */
  readonly rates: ClientRateLimits;
  readonly perListener: Record<ListenerKind, ConnectionSettings>;
  readonly pop3: Record<'pop3' | 'pop3s', Pop3ConnectionSettings>;
  readonly web: WebConnectionSettings;
  readonly metrics: MetricsService;
  readonly logger: Logger;
}

/** What the reception needs of a connection, SMTP, POP3 or HTTP. */
interface OpenConnection {
  open(): void;
  shutdown(): void;
  destroy(outcome?: 'shutdown' | 'error'): void;
}

export class Reception {
  private readonly open = new Set<OpenConnection>();
  private onEmpty: (() => void) | undefined;
  private closing = false;

  constructor(private settings: ReceptionSettings) {}

  get openConnections(): number {
    return this.open.size;
  }

  /** New settings apply to connections accepted from now on; open ones keep theirs. */
  update(settings: ReceptionSettings): void {
    this.settings = settings;
  }

  readonly onConnection = (socket: net.Socket, kind: ServiceKind): void => {
    const admitted = admit(socket, kind, this.closing ? undefined : this.settings);
    if (admitted === undefined) return;
    const { limiter, ip } = admitted;
    this.serve(socket, kind, () => limiter.release(ip));
  };

  /**
   * Runs a session on an admitted connection (onConnection's checks passed here, or in the
   * primary process that handed the socket on); `ended` runs once when it is over.
   */
  serve(socket: net.Socket, kind: ServiceKind, ended: () => void): void {
    const ip = clientAddress(socket);
    const port = socket.remotePort;
    if (ip === undefined || port === undefined || this.closing) {
      socket.destroy();
      ended();
      return;
    }
    const { logger } = this.settings;
    const finished = (c: OpenConnection): void => {
      ended();
      this.open.delete(c);
      if (this.open.size === 0) this.onEmpty?.();
    };
    const connection: OpenConnection = isPop3(kind)
      ? new Pop3Connection(socket, ip, port, kind, this.settings.pop3[kind], finished)
      : isWeb(kind)
        ? new WebConnection(socket, ip, port, kind, this.settings.web, finished)
        : kind === 'metrics'
          ? new MetricsConnection(socket, this.settings.metrics, finished)
          : new Connection(socket, ip, port, kind, this.settings.perListener[kind], finished);
    this.open.add(connection);
    try {
      connection.open();
    } catch (err) {
      // A fault in our own code must cost one connection, not the server.
      logger.error({ err, client_ip: ip }, 'cannot start a session');
      connection.destroy('error');
    }
  }

  /**
   * Asks every session to end (idle ones at once, those receiving a message after it), waits up
   * to graceMs for them, then cuts what is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.closing = true;
    for (const c of [...this.open]) c.shutdown();
    if (this.open.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.onEmpty = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const c of [...this.open]) c.destroy();
  }
}

/** What admission needs: the caps and rates, and how to word a refusal. */
export type Admission = Pick<ReceptionSettings, 'hostname' | 'limiter' | 'rates' | 'logger'>;

/**
 * The connection rate and the concurrent caps, checked before any session starts: a refused
 * client gets its one-line answer and the socket is closed. Admitted, the caller owns the slot
 * and must release it (limiter.release(ip)) when the connection ends.
 */
export function admit(socket: net.Socket, kind: ServiceKind, admission: Admission | undefined): { ip: string; limiter: ConnectionLimiter } | undefined {
  const ip = clientAddress(socket);
  const port = socket.remotePort;
  if (ip === undefined || port === undefined || admission === undefined) {
    // Already gone (reset before we got to it), or we are stopping.
    socket.destroy();
    return undefined;
  }
  const { limiter, rates, logger, hostname } = admission;
  connectionsOpened.inc({ listener: kind });
    // Counted first, so that a connection over the rate never takes a slot of the concurrent cap.
    const rated = isPop3(kind) ? 'pop3' : isWeb(kind) || kind === 'metrics' ? undefined : 'smtp';
    if (rated !== undefined && !rates.admitConnection(ip, rated, kind)) {
      refuse(socket, kind, hostname, 'rate');
      sessionsRefused.inc({ listener: kind, reason: 'rate' });
      logRefusal(logger, ip, port, kind, 'rate');
      return undefined;
    }
    const verdict = limiter.tryAcquire(ip);
    switch (verdict) {
      case 'ok':
        break;
      case 'per-ip':
      case 'total':
        refuse(socket, kind, hostname, verdict);
        sessionsRefused.inc({ listener: kind, reason: verdict });
        logRefusal(logger, ip, port, kind, verdict);
        return undefined;
    }
    return { ip, limiter };
}


type Refusal = 'per-ip' | 'total' | 'rate';

const REFUSAL_TEXT: Record<Refusal, string> = {
  'per-ip': 'Too many connections from your address',
  total: 'Too many connections',
  rate: 'Too many connections from your address in the last minute',
};

function logRefusal(logger: Logger, ip: string, port: number, kind: ServiceKind, why: Refusal): void {
  if (isPop3(kind) || isWeb(kind) || kind === 'metrics') {
    const msg = isPop3(kind) ? 'pop3 connection' : 'http connection';
    logger.info({ client_ip: ip, client_port: port, listener: kind, outcome: 'refused', why }, msg);
    return;
  }
  logConnection(logger, {
    clientIp: ip,
    clientPort: port,
    listener: kind,
    helo: undefined,
    tls: undefined,
    messages: 0,
    rejected: 0,
    errors: 0,
    durationMs: 0,
    outcome: 'refused',
  });
}

function refuse(socket: net.Socket, kind: ServiceKind, hostname: string, why: Refusal): void {
  socket.on('error', () => socket.destroy());
  // On the implicit-TLS listeners a plaintext reply would be garbage to the client, and a
  // handshake is exactly the work the limit exists to avoid: just close.
  if (kind === 'submissions' || kind === 'pop3s' || kind === 'https') {
    socket.destroy();
    return;
  }
  const text = REFUSAL_TEXT[why];
  if (kind === 'http' || kind === 'metrics') {
    // RFC 9110 15.6.4: 503, the server cannot take the request now; its request is not read.
    socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 10\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\n\r\n${text}\n`);
    setTimeout(() => socket.destroy(), 2_000).unref();
    return;
  }
  // RFC 2449 8.1.2: [SYS/TEMP] is a temporary problem on our side.
  const line = kind === 'pop3' ? `-ERR [SYS/TEMP] ${text}, try again later\r\n` : formatReply(reply(421, '4.7.0', `${hostname} ${text}, try again later`));
  socket.end(line);
  setTimeout(() => socket.destroy(), 2_000).unref();
}

/** The client's IP, with IPv4-mapped IPv6 ("::ffff:192.0.2.1") shown as plain IPv4. */
function clientAddress(socket: net.Socket): string | undefined {
  const a = socket.remoteAddress;
  return a?.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
