// Per-client rates, beyond the concurrent cap of connection-limiter.ts: how many new connections
// a client opens and how many messages it starts per minute, as Postfix's anvil counts them
// (smtpd_client_connection_rate_limit, smtpd_client_message_rate_limit, per anvil_rate_time_unit
// of 60 s). A client over a rate is told to come back later, never refused for good: it may be a
// legitimate MTA flushing its queue, and RFC 5321 4.2.5 lets it retry.
// - Connections, at accept and before any TLS handshake: 421 4.7.0 (RFC 5321 3.8), or a close on
//   the implicit-TLS listeners. SMTP (mx, submission, submissions together) and POP3 (pop3, pop3s)
//   are counted apart: a mail program polling its maildrop must not use up the budget of the same
//   household's outgoing mail, and POP3 sessions are one per poll by design (RFC 1939).
// - Messages, at MAIL FROM: 450 4.7.1 (RFC 3463 X.7.1), as Postfix answers "too much mail". Only
//   sessions without AUTH count: an authenticated account has its own limits (rate-limits.ts), and
//   an office behind one NAT address must not share one budget among its users.
// Every attempt counts, the refused ones too (as in anvil): a client that keeps hammering stays
// refused until it slows down. Trusted networks ([limits] trusted_networks) are never counted.
//
// Counting: a sliding window counter (rate-window.ts) per client, IPv6 per /64 (throttleKey: one
// host often holds a whole /64 and could rotate through it), rounded up so that a burst cannot slip
// through across a window boundary. Memory: each table holds at most `maxTracked` clients (the least
// recently seen go first, LruMap), and a client idle for a full window is dropped on the next event.
// A flood from more distinct addresses than that evicts the oldest counts: by then the per-IP limit
// is not what stands between the server and the flood (max_connections is).
//
// Each refusal is ONE log line (its keys are an interface, as in log/mail-log.ts):
//   { msg: "connection rate limit exceeded" | "message rate limit exceeded", client_ip, listener,
//     count, limit }
// count is the client's events in the last minute, this one included; limit the configured rate.
// contrib/fail2ban/filter.d/postern.conf matches these lines (and AUTH's "auth failed").

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { reply, type Reply } from '../mail/reply.js';
import type { RateWindowState } from '../store/store.js';
import { LruMap } from '../util/lru-map.js';
import { NetworkList } from '../util/network-list.js';
import { throttleKey } from './auth-throttle.js';
import { addToWindow, countInWindow } from './rate-window.js';

export const MINUTE_MS = 60_000;

/** Clients tracked per table: about 130 bytes each (measured), so some 13 MB per table at worst. */
export const MAX_TRACKED_CLIENTS = 100_000;

export interface ClientRateRules {
  /** New connections per client per minute, SMTP and POP3 each; 0 = no limit. */
  readonly connectionsPerMinute: number;
  /** MAIL FROM per client per minute in sessions without AUTH; 0 = no limit. */
  readonly messagesPerMinute: number;
  readonly trusted: NetworkList;
}

export function clientRateRules(config: Config): ClientRateRules {
  const { limits } = config;
  return {
    connectionsPerMinute: limits.client_connection_rate,
    messagesPerMinute: limits.client_message_rate,
    trusted: new NetworkList(limits.trusted_networks),
  };
}

export type ConnectionProtocol = 'smtp' | 'pop3';

/** Events per key in the last minute, for at most `maxTracked` keys. */
export class RateTable {
  private readonly table: LruMap<string, RateWindowState>;

  constructor(
    maxTracked: number,
    private readonly now: () => number,
  ) {
    this.table = new LruMap(maxTracked);
  }

  /** Keys tracked now. */
  get size(): number {
    return this.table.size;
  }

  /** Counts one event for `key`; returns its events in the last minute, this one included. */
  hit(key: string): number {
    const now = this.now();
    this.expire(now);
    const w = addToWindow(this.table.get(key), now, MINUTE_MS, 1);
    this.table.set(key, w);
    return countInWindow(w, now, MINUTE_MS, Math.ceil);
  }

  /** The keys with events in the last minute, least recently seen first, with their windows. */
  records(): [string, RateWindowState][] {
    const now = this.now();
    const kept: [string, RateWindowState][] = [];
    for (const [key, w] of this.table.entries()) if (countInWindow(w, now, MINUTE_MS, Math.ceil) > 0) kept.push([key, { ...w }]);
    return kept;
  }

  /** Takes another table's records(); the windows are aligned to the epoch, so they expire on time. */
  restore(records: readonly (readonly [string, RateWindowState])[]): void {
    for (const [key, w] of records) this.table.set(key, { ...w });
  }

  /**
   * Each hit makes its key the most recently used, so the table is in the order of last events and
   * the idle keys are at the old end: each is looked at once more, then dropped.
   */
  private expire(now: number): void {
    for (let o = this.table.oldest(); o && countInWindow(o[1], now, MINUTE_MS, Math.ceil) === 0; o = this.table.oldest()) {
      this.table.delete(o[0]);
    }
  }
}

export interface ClientRateOptions {
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Per table; default MAX_TRACKED_CLIENTS. */
  readonly maxTracked?: number;
  /** Told of every message counted here (a worker process tells the others). */
  readonly onMessage?: (ip: string) => void;
}

/** One per server: the counts outlive a reload, which replaces only the rules (update). */
export class ClientRateLimits {
  private readonly connections: Record<ConnectionProtocol, RateTable>;
  private readonly messages: RateTable;
  private readonly logger: Logger | undefined;
  private readonly onMessage: ((ip: string) => void) | undefined;

  constructor(
    private rules: ClientRateRules,
    opts: ClientRateOptions = {},
  ) {
    const now = opts.now ?? Date.now;
    const max = opts.maxTracked ?? MAX_TRACKED_CLIENTS;
    this.connections = { smtp: new RateTable(max, now), pop3: new RateTable(max, now) };
    this.messages = new RateTable(max, now);
    this.logger = opts.logger;
    this.onMessage = opts.onMessage;
  }

  /**
   * A message another worker process counted (src/server/workers.ts), so that the count is the
   * whole server's: counted like checkMessage, never refused nor logged here.
   */
  messageElsewhere(ip: string): void {
    if (this.rules.messagesPerMinute === 0 || this.rules.trusted.contains(ip)) return;
    this.messages.hit(throttleKey(ip));
  }

  /**
   * The message counts in force, for a worker process started again (src/server/shared-counts.ts).
   * Not the connection counts: in worker mode the primary process counts connections itself.
   */
  messageRecords(): [string, RateWindowState][] {
    return this.messages.records();
  }

  restoreMessages(records: readonly (readonly [string, RateWindowState])[]): void {
    this.messages.restore(records);
  }

  update(rules: ClientRateRules): void {
    this.rules = rules;
  }

  /** Clients tracked now, per table (for tests of the memory bound). */
  get tracked(): { smtp: number; pop3: number; messages: number } {
    return { smtp: this.connections.smtp.size, pop3: this.connections.pop3.size, messages: this.messages.size };
  }

  /** A new connection from `ip`: true to serve it, false to refuse it (and the refusal is logged). */
  admitConnection(ip: string, protocol: ConnectionProtocol, listener: string): boolean {
    const limit = this.rules.connectionsPerMinute;
    if (limit === 0 || this.rules.trusted.contains(ip)) return true;
    const count = this.connections[protocol].hit(throttleKey(ip));
    if (count <= limit) return true;
    this.logger?.warn({ client_ip: ip, listener, count, limit }, 'connection rate limit exceeded');
    return false;
  }

  /** MAIL FROM in a session without AUTH: undefined to go ahead, or the 450 4.7.1 (logged). */
  checkMessage(ip: string, listener: string): Reply | undefined {
    const limit = this.rules.messagesPerMinute;
    if (limit === 0 || this.rules.trusted.contains(ip)) return undefined;
    this.onMessage?.(ip);
    const count = this.messages.hit(throttleKey(ip));
    if (count <= limit) return undefined;
    this.logger?.warn({ client_ip: ip, listener, count, limit }, 'message rate limit exceeded');
    return reply(450, '4.7.1', `Too much mail from ${ip}, try again later`);
  }
}
