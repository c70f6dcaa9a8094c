// One connection to the http or https listener, as the reception sees it: admitted by the
// connection limits, through the TLS handshake on https (the same certificates, SNI and reloads
// as every other listener), then handed to the WebService for its requests. It counts as open
// until the socket closes, so keep-alive connections hold their place in the limits.

import type net from 'node:net';
import type { Logger } from 'pino';
import { tlsHandshakeFailures } from '../metrics/metrics.js';
import { tlsHandshake, type HandshakeCertificates } from '../tls/tls-handshake.js';
import type { WebService } from './web-service.js';

export interface WebConnectionSettings {
  readonly service: WebService;
  readonly certificates: HandshakeCertificates;
  readonly handshakeTimeoutMs: number;
  readonly logger: Logger;
}

export class WebConnection {
  private socket: net.Socket;
  private finished = false;

  constructor(
    socket: net.Socket,
    private readonly clientIp: string,
    private readonly clientPort: number,
    private readonly listener: 'http' | 'https',
    private readonly settings: WebConnectionSettings,
    private readonly onFinished: (c: WebConnection) => void,
  ) {
    this.socket = socket;
    // Resets and broken pipes are what clients do; node:http reports the rest as clientError.
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.finish());
  }

  open(): void {
    const facts = { clientIp: this.clientIp, clientPort: this.clientPort, listener: this.listener };
    if (this.listener === 'http') {
      this.settings.service.serve(this.socket, { ...facts, tlsVersion: undefined });
      return;
    }
    tlsHandshake(this.socket, this.settings.certificates, this.settings.handshakeTimeoutMs).then(
      (secure) => {
        if (this.finished) {
          secure.destroy();
          return;
        }
        this.socket = secure;
        secure.on('error', () => secure.destroy());
        secure.once('close', () => this.finish());
        this.settings.service.serve(secure, { ...facts, tlsVersion: secure.getProtocol() ?? undefined });
      },
      (err: unknown) => {
        tlsHandshakeFailures.inc({ listener: this.listener });
        this.settings.logger.debug(
          { client_ip: this.clientIp, listener: this.listener, err: err instanceof Error ? err.message : String(err) },
          'TLS handshake failed',
        );
        this.finish();
      },
    );
  }

  /** Server stopping: an idle connection closes now, one with a request after its answer. */
  shutdown(): void {
    this.settings.service.shutdown(this.socket);
  }

  destroy(): void {
    this.socket.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onFinished(this);
  }
}
