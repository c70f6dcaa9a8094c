// Our LMTP client (RFC 2033): a session with the server that files local mail into mailboxes
// (Dovecot's lmtp, say), over a Unix socket or TCP. LMTP is SMTP with LHLO in place of EHLO and,
// after the final dot, one reply per accepted recipient; client/client-session.ts carries both.
// No TLS and no AUTH: the server is on this host or next to it, as [delivery] lmtp says.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { replyLine } from '../../mail/reply.js';
import { ClientSession, connectSocket, type ClientEndpoint, type ClientTimeouts } from '../client/client-session.js';
import { ReplyStream, SmtpClientError } from '../client/reply-stream.js';

export interface LmtpClientOptions {
  readonly endpoint: ClientEndpoint;
  /** Our name in LHLO. */
  readonly lhloName: string;
  readonly timeouts: ClientTimeouts;
  readonly logger: Logger;
  /** Cuts the session wherever it is (connectSocket): the courier's stop at shutdown. */
  readonly signal?: AbortSignal | undefined;
}

/** "unix:/path" or "host:port" ("[::1]:24" for an IPv6 address), as [delivery] lmtp is written. */
export function parseLmtpEndpoint(text: string): ClientEndpoint {
  if (text.startsWith('unix:')) return { kind: 'unix', path: text.slice('unix:'.length) };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new Error(`[delivery] lmtp: expected "unix:/path/to/socket" or "host:port", got ${JSON.stringify(text)}`);
  return { kind: 'tcp', address: m[1] ?? m[2] ?? '', port };
}

/** How the server is named in logs and DSNs: as [delivery] lmtp writes it. */
export function lmtpPeerName(endpoint: ClientEndpoint): string {
  if (endpoint.kind === 'unix') return `unix:${endpoint.path}`;
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

export class LmtpClientConnection extends ClientSession {
  private constructor(opts: LmtpClientOptions, socket: Socket, replies: ReplyStream) {
    const peer = lmtpPeerName(opts.endpoint);
    super({ peer, name: peer, timeouts: opts.timeouts, logger: opts.logger, repliesAfterDot: 'per-recipient' }, socket, replies);
  }

  /** Connects, reads the greeting and says LHLO; throws SmtpClientError when no session can be had. */
  static async open(opts: LmtpClientOptions): Promise<LmtpClientConnection> {
    const peer = lmtpPeerName(opts.endpoint);
    const replies = new ReplyStream(peer);
    const socket = await connectSocket(opts.endpoint, peer, opts.timeouts.connectMs, opts.signal);
    try {
      replies.attach(socket);
      const conn = new LmtpClientConnection(opts, socket, replies);
      await conn.readGreeting();
      // RFC 2033 4.1: LHLO is the only hello; a server that refuses it is no LMTP server.
      const lhlo = await conn.hello('LHLO', opts.lhloName);
      if (lhlo.code !== 250) throw new SmtpClientError(`${peer} refused LHLO: ${replyLine(lhlo)}`, { reply: lhlo });
      return conn;
    } catch (err) {
      replies.fail(err instanceof Error ? err : new Error(String(err)));
      socket.destroy();
      throw err;
    }
  }
}
