// The listening sockets: one net.Server per address in [listen]. They are bound while we may
// still be root (ports 25/465/587), but connections are only handed on once accept() is called,
// after privileges were dropped: no byte from the network is read by a privileged process.

import net from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { parseListenAddress } from '../config/schema.js';
import type { ListenerKind } from '../mail/envelope.js';
import { describeErrno, StartupError } from '../util/startup-error.js';

/**
 * What a listener serves: an SMTP role (ListenerKind), POP3 with STLS or over implicit TLS, or
 * HTTP and HTTPS (src/web/: client autoconfiguration and the MTA-STS policy), or the Prometheus
 * metrics (metrics-service.ts).
 */
export type ServiceKind = ListenerKind | 'pop3' | 'pop3s' | 'http' | 'https' | 'metrics';

/** In [listen] order; binding goes in this order, so the log lists them so. */
export const SERVICE_KINDS: readonly ServiceKind[] = ['mx', 'submission', 'submissions', 'pop3', 'pop3s', 'http', 'https', 'metrics'];

export function isPop3(kind: ServiceKind): kind is 'pop3' | 'pop3s' {
  return kind === 'pop3' || kind === 'pop3s';
}

export function isWeb(kind: ServiceKind): kind is 'http' | 'https' {
  return kind === 'http' || kind === 'https';
}

export interface BoundListener {
  readonly kind: ServiceKind;
  readonly address: string;
  readonly port: number;
}

export type ConnectionHandler = (socket: net.Socket, kind: ServiceKind) => void;

interface Bound {
  readonly kind: ServiceKind;
  readonly server: net.Server;
}

export class Listeners {
  private handler: ConnectionHandler | undefined;
  private readonly held: { socket: net.Socket; kind: ServiceKind }[] = [];

  private constructor(
    private readonly servers: readonly Bound[],
    readonly bound: readonly BoundListener[],
  ) {}

  /** Binds every configured address; on any failure closes what was bound and throws StartupError. */
  static async bind(listen: Config['listen'], logger: Logger): Promise<Listeners> {
    const servers: Bound[] = [];
    const bound: BoundListener[] = [];
    const listeners = new Listeners(servers, bound);
    try {
      for (const kind of SERVICE_KINDS) {
        for (const text of listen[kind]) {
          const { host, port } = parseListenAddress(text);
          // pauseOnConnect: the kernel may accept, but we read nothing until the session wants it.
          const server = net.createServer({ pauseOnConnect: true, noDelay: true });
          server.on('connection', (socket: net.Socket) => listeners.onConnection(socket, kind));
          await listenOn(server, host, port).catch((err: unknown) => {
            throw listenError(err, kind, text);
          });
          // Errors after binding (EMFILE on accept...) must not crash the server.
          server.on('error', (err) => logger.error({ err: err.message, listener: kind }, 'listener error'));
          servers.push({ kind, server });
          const addr = server.address() as net.AddressInfo;
          bound.push({ kind, address: addr.address, port: addr.port });
        }
      }
    } catch (err) {
      listeners.close();
      throw err;
    }
    return listeners;
  }

  /** Starts handing connections to `handler`, including any that arrived while we were starting. */
  accept(handler: ConnectionHandler): void {
    this.handler = handler;
    for (const { socket, kind } of this.held.splice(0)) {
      if (!socket.destroyed) handler(socket, kind);
    }
  }

  /** Stops accepting new connections; open ones are the caller's to end. */
  close(): void {
    for (const { server } of this.servers) server.close();
    for (const { socket } of this.held.splice(0)) socket.destroy();
  }

  private onConnection(socket: net.Socket, kind: ServiceKind): void {
    if (this.handler) {
      this.handler(socket, kind);
      return;
    }
    socket.on('error', () => socket.destroy());
    this.held.push({ socket, kind });
  }
}

function listenOn(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    // ipv6Only: otherwise "[::]:25" also takes IPv4 port 25 and the usual pair
    // ["0.0.0.0:25", "[::]:25"] fails with "address already in use".
    server.listen({ host, port, backlog: 1024, exclusive: true, ipv6Only: host.includes(':') }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function listenError(err: unknown, kind: ServiceKind, address: string): StartupError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  let hint: string;
  switch (code) {
    case 'EADDRINUSE':
      hint = `another server running? change [listen] ${kind} in the config`;
      break;
    case 'EACCES':
    case 'EPERM':
      hint = 'ports below 1024 need root or CAP_NET_BIND_SERVICE';
      break;
    case 'EADDRNOTAVAIL':
      hint = `no interface has this address; change [listen] ${kind} in the config`;
      break;
    default:
      hint = `check [listen] ${kind} in the config`;
  }
  return new StartupError(`cannot listen on ${address}: ${describeErrno(err)} (${hint})`, { cause: err });
}
