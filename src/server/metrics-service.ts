// The metrics listener ([listen] metrics): Prometheus' text exposition of src/metrics/ at
// GET /metrics, and nothing else. It has a listener of its own, on loopback by default, so that
// a scraper never shares a port with the public web listeners and the figures are not published
// to the world by accident (they say how busy the server is and who it talks to).

import http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import { registry } from '../metrics/metrics.js';

export class MetricsService {
  private readonly server: http.Server;

  /**
   * `collect`: the exposition text; by default this process's registry. A worker process asks
   * the primary, which sums every process's figures (src/server/workers.ts).
   */
  constructor(
    private readonly logger: Logger,
    private readonly collect: () => Promise<string> = () => registry.metrics(),
  ) {
    this.server = http.createServer(
      // A scrape is one small request; anything slow or large is not Prometheus.
      { requestTimeout: 10_000, headersTimeout: 10_000, maxHeaderSize: 8192 },
      (req, res) => void this.answer(req, res),
    );
    this.server.keepAliveTimeout = 60_000;
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  /** Serves one accepted connection (the reception counts it as open until it closes). */
  serve(socket: net.Socket): void {
    this.server.emit('connection', socket);
    // Listeners accept with pauseOnConnect; node:http's own reader does not start the flow then.
    socket.resume();
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      send(res, 404, 'text/plain; charset=utf-8', 'Not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'Method not allowed\n');
      return;
    }
    try {
      const body = await this.collect();
      // node:http leaves the body out of an answer to HEAD itself.
      send(res, 200, registry.contentType, body);
    } catch (err) {
      this.logger.error({ err }, 'cannot collect metrics');
      send(res, 500, 'text/plain; charset=utf-8', 'Cannot collect metrics; see the server log\n');
    }
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** One connection to the metrics listener, as the reception sees it. */
export class MetricsConnection {
  private finished = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly service: MetricsService,
    private readonly onFinished: (c: MetricsConnection) => void,
  ) {
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.finish());
  }

  open(): void {
    this.service.serve(this.socket);
  }

  shutdown(): void {
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onFinished(this);
  }
}
