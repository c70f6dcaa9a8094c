// The HTTP server behind the http and https listeners: node:http, fed the sockets the server's
// Listeners accepted (after the connection limits, and after TLS for https), so it never binds
// a port itself. What a serious server limits, it limits here:
//
//   - request heads: 8 KiB (431 beyond), 50 header fields, 10 s to send them (408, slowloris);
//   - a whole request 30 s, an idle keep-alive connection 5 s, 100 requests per connection;
//   - request bodies only where a route takes one (the Autodiscover POST), at most 16 KiB (413);
//   - GET/HEAD/POST only where the route has them (405 with Allow), origin-form targets only;
//   - our own faults answer 500 with no detail; the log has it.
//
// One access log line per request ("http request"), and one for each request the parser
// refused before it became one.

import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { normalizeDomain } from '../mail/address.js';
import type { Site, WebAnswer, WebRequest } from './site.js';

export const MAX_HEADER_BYTES = 8 * 1024;
export const MAX_BODY_BYTES = 16 * 1024;
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const MAX_REQUESTS_PER_CONNECTION = 100;
/** The longest user agent and path written to the log. */
const MAX_LOGGED = 200;

/** Sent with every answer: nothing here is a page to frame, sniff, script or cache. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** Who is on the other end of a connection handed to serve(). */
export interface ConnectionFacts {
  readonly clientIp: string;
  readonly clientPort: number;
  readonly listener: 'http' | 'https';
  readonly tlsVersion: string | undefined;
}

interface ConnectionState {
  readonly facts: ConnectionFacts;
  /** Requests whose answer is not finished. */
  busy: number;
  /** The server is stopping: close once the answer in progress is out. */
  closing: boolean;
}

export class WebService {
  private readonly server: http.Server;
  private readonly connections = new WeakMap<Duplex, ConnectionState>();

  constructor(
    private site: Site,
    private readonly logger: Logger,
  ) {
    this.server = http.createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        connectionsCheckingInterval: 1_000,
        requireHostHeader: true,
      },
      (req, res) => this.onRequest(req, res),
    );
    this.server.maxHeadersCount = 50;
    this.server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    // node:http enforces headersTimeout and requestTimeout from a timer it starts on 'listening'.
    // This server never listens (the sockets come from Listeners), so it is told it does.
    this.server.emit('listening');
  }

  /** New settings (a reload) apply to the next request. */
  update(site: Site): void {
    this.site = site;
  }

  /** Hands over a connection, plain or already through its TLS handshake. */
  serve(socket: Duplex, facts: ConnectionFacts): void {
    this.connections.set(socket, { facts, busy: 0, closing: false });
    this.server.emit('connection', socket);
    // Listeners accept with pauseOnConnect; node:http's own reader does not start the flow then.
    socket.resume();
  }

  /** The server is stopping: an idle connection closes now, a busy one after its answer. */
  shutdown(socket: Duplex): void {
    const state = this.connections.get(socket);
    if (state === undefined || state.busy === 0) socket.destroy();
    else state.closing = true;
  }

  /** Stops the header and request timers; the connections are the reception's to end. */
  close(): void {
    this.server.close(() => {});
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = performance.now();
    const state = this.connections.get(req.socket);
    if (state) state.busy++;
    let bytes = 0;
    res.once('close', () => {
      if (state) {
        state.busy--;
        if (state.closing && state.busy === 0) req.socket.destroy();
      }
      this.logger.info(
        {
          client_ip: state?.facts.clientIp ?? null,
          client_port: state?.facts.clientPort ?? null,
          listener: state?.facts.listener ?? null,
          tls_version: state?.facts.tlsVersion ?? null,
          method: req.method,
          host: clip(req.headers.host),
          path: clip((req.url ?? '').split('?')[0]),
          status: res.statusCode,
          bytes,
          duration_ms: Math.round(performance.now() - started),
          user_agent: clip(req.headers['user-agent']),
          outcome: res.writableFinished ? 'answered' : 'disconnected',
        },
        'http request',
      );
    });
    const send = (answer: WebAnswer, close = false): void => {
      const body = Buffer.from(answer.body, 'utf8');
      bytes = req.method === 'HEAD' ? 0 : body.length;
      res.writeHead(answer.status, {
        ...SECURITY_HEADERS,
        'content-type': answer.contentType,
        'content-length': String(body.length),
        ...answer.headers,
        ...(close || state?.closing ? { connection: 'close' } : {}),
      });
      res.end(body);
    };
    this.respond(req, state?.facts.listener === 'https', send).catch((err: unknown) => {
      this.logger.error({ err, client_ip: state?.facts.clientIp ?? null, path: clip(req.url) }, 'http request failed');
      if (!res.headersSent) send(plain(500, 'Internal server error'), true);
      else res.destroy();
    });
  }

  private async respond(req: http.IncomingMessage, secure: boolean, send: (answer: WebAnswer, close?: boolean) => void): Promise<void> {
    const target = req.url ?? '';
    // RFC 9112 3.2: origin-form is what a client sends a server (absolute-form is for proxies).
    if (!target.startsWith('/')) return send(plain(400, 'Bad request target'), true);
    const query = target.indexOf('?');
    const path = query < 0 ? target : target.slice(0, query);
    const site = this.site;
    const route = site.route(path);
    if (route === undefined) return send(plain(404, 'Not found'));
    const method = req.method ?? '';
    if (!route.methods.includes(method)) {
      return send({ ...plain(405, 'Method not allowed'), headers: { allow: route.methods.join(', ') } });
    }
    let body: Buffer | undefined;
    if (route.takesBody) {
      const read = await readBody(req, MAX_BODY_BYTES);
      if (read.kind === 'gone') return;
      // The rest of an oversized body is never read, so the connection cannot carry on.
      if (read.kind === 'too-large') return send(plain(413, `Request body over ${MAX_BODY_BYTES} bytes`), true);
      body = read.body;
    }
    const request: WebRequest = {
      method,
      host: hostName(req.headers.host),
      query: new URLSearchParams(query < 0 ? '' : target.slice(query + 1)),
      secure,
      body,
    };
    send(await route.answer(request));
  }

  /** The parser refused the request (too large a head, a timeout, bad syntax): answer and close. */
  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const state = this.connections.get(socket);
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    // A reset or a half-sent request on a connection gone quiet is no request to log.
    if (err.code !== 'ECONNRESET' && socket.writable) {
      this.logger.info(
        {
          client_ip: state?.facts.clientIp ?? null,
          client_port: state?.facts.clientPort ?? null,
          listener: state?.facts.listener ?? null,
          status,
          err: err.code ?? err.message,
        },
        'http request refused',
      );
      const reason = http.STATUS_CODES[status] ?? 'Bad Request';
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  }
}

type Body = { readonly kind: 'body'; readonly body: Buffer } | { readonly kind: 'too-large' } | { readonly kind: 'gone' };

/**
 * The body, unless it passes `limit` (a Content-Length over it is refused before a byte is
 * read) or the client goes away first. node:http has already undone chunked coding.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Body> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.resolve({ kind: 'too-large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: Body): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        finish({ kind: 'too-large' });
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = (): void => finish({ kind: 'body', body: Buffer.concat(chunks) });
    const onGone = (): void => finish({ kind: 'gone' });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}

/** The name in a Host header ("autoconfig.example.com:443"), normalized; an IP literal has none. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^([^:[\]]+)(?::\d{1,5})?$/.exec(header.trim());
  return m?.[1] !== undefined ? normalizeDomain(m[1]) : undefined;
}

function plain(status: number, text: string): WebAnswer {
  return { status, contentType: 'text/plain; charset=utf-8', body: `${text}\n` };
}

function clip(text: string | undefined): string | null {
  if (text === undefined) return null;
  return text.length > MAX_LOGGED ? `${text.slice(0, MAX_LOGGED)}…` : text;
}
