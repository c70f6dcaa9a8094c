// Outbound connection slots and idle sessions. Like Postfix's qmgr and scache: at most
// `perDestination` connections to one destination and `total` in all, deliveries beyond that wait
// their turn in order, and a session that just finished a message is kept for a few seconds for
// the next message to the same destination (which sends RSET first, client-session.ts) instead
// of a new TCP and TLS handshake. An idle session holds its slot; one is closed when a delivery
// to another destination needs the slot. SMTP pools per next hop, LMTP its one server.

import type { Logger } from 'pino';

/** What the pool needs of a session (ClientSession has it). */
export interface PooledSession {
  readonly usable: boolean;
  quit(): Promise<void>;
  ref(): void;
  unref(): void;
}

export interface PoolLimits {
  readonly perDestination: number;
  readonly total: number;
  /** How long a session is kept idle. */
  readonly idleMs: number;
}

/** The right to one connection to `destination`; give it back with release(). */
export interface Lease<S extends PooledSession> {
  readonly destination: string;
  /** An idle session to the destination, to try before opening a new one. */
  readonly idle: S | undefined;
  /** Frees the slot; a usable `session` is kept idle for the next lease instead. */
  release(session?: S): void;
}

interface Idle<S> {
  readonly session: S;
  readonly timer: NodeJS.Timeout;
}

interface Waiter<S extends PooledSession> {
  readonly destination: string;
  readonly grant: (lease: Lease<S>) => void;
  readonly refuse: (err: Error) => void;
}

export class ConnectionPool<S extends PooledSession> {
  /** Slots held per destination, idle sessions included. */
  private readonly held = new Map<string, number>();
  private total = 0;
  private readonly idle = new Map<string, Idle<S>[]>();
  private readonly waiters: Waiter<S>[] = [];
  private closed = false;

  constructor(
    private readonly limits: PoolLimits,
    private readonly logger: Logger,
  ) {}

  get stats(): { connections: number; idle: number; waiting: number } {
    let idle = 0;
    for (const list of this.idle.values()) idle += list.length;
    return { connections: this.total, idle, waiting: this.waiters.length };
  }

  acquire(destination: string): Promise<Lease<S>> {
    if (this.closed) return Promise.reject(new Error('connection pool is closed'));
    // Freed slots go to waiters at once (pump), so a free slot here is nobody else's.
    const lease = this.tryGrant(destination);
    if (lease) return Promise.resolve(lease);
    return new Promise((grant, refuse) => this.waiters.push({ destination, grant, refuse }));
  }

  /** Closes idle sessions (QUIT) and refuses waiting deliveries. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.refuse(new Error('connection pool is closed'));
    const sessions: S[] = [];
    for (const [destination, list] of this.idle) {
      for (const i of list) {
        clearTimeout(i.timer);
        sessions.push(i.session);
        this.free(destination);
      }
    }
    this.idle.clear();
    await Promise.all(sessions.map((s) => s.quit()));
  }

  private tryGrant(destination: string): Lease<S> | undefined {
    const reused = this.takeIdle(destination);
    if (reused) return this.lease(destination, reused);
    if ((this.held.get(destination) ?? 0) >= this.limits.perDestination) return undefined;
    if (this.total >= this.limits.total && !this.evictIdle()) return undefined;
    this.held.set(destination, (this.held.get(destination) ?? 0) + 1);
    this.total++;
    return this.lease(destination, undefined);
  }

  private lease(destination: string, idle: S | undefined): Lease<S> {
    let released = false;
    idle?.ref();
    return {
      destination,
      idle,
      release: (session) => {
        if (released) return;
        released = true;
        this.giveBack(destination, session);
      },
    };
  }

  private giveBack(destination: string, session: S | undefined): void {
    if (session && session.usable && !this.closed) {
      const next = this.waiters.findIndex((w) => w.destination === destination);
      if (next !== -1) {
        const [w] = this.waiters.splice(next, 1);
        w!.grant(this.lease(destination, session));
        return;
      }
      // When others wait because every slot is taken, the slot is worth more than the session.
      if (this.waiters.length === 0 || this.total < this.limits.total) {
        this.park(destination, session);
        return;
      }
    }
    if (session) void session.quit();
    this.free(destination);
    this.pump();
  }

  private park(destination: string, session: S): void {
    session.unref();
    const timer = setTimeout(() => {
      const list = this.idle.get(destination) ?? [];
      const at = list.findIndex((i) => i.session === session);
      if (at === -1) return;
      list.splice(at, 1);
      if (list.length === 0) this.idle.delete(destination);
      void session.quit();
      this.free(destination);
      this.pump();
    }, this.limits.idleMs);
    timer.unref();
    const list = this.idle.get(destination) ?? [];
    list.push({ session, timer });
    this.idle.set(destination, list);
  }

  private takeIdle(destination: string): S | undefined {
    const list = this.idle.get(destination);
    if (!list) return undefined;
    // Most recently used first: the one least likely to have been closed by the peer.
    const i = list.pop();
    if (list.length === 0) this.idle.delete(destination);
    if (!i) return undefined;
    clearTimeout(i.timer);
    return i.session;
  }

  /** Closes one idle session of any destination to free a slot; false if there is none. */
  private evictIdle(): boolean {
    for (const [destination, list] of this.idle) {
      const i = list.shift();
      if (!i) continue;
      if (list.length === 0) this.idle.delete(destination);
      clearTimeout(i.timer);
      void i.session.quit();
      this.free(destination);
      this.logger.debug({ destination }, 'connection pool: closed an idle session to free a slot');
      return true;
    }
    return false;
  }

  private free(destination: string): void {
    const n = (this.held.get(destination) ?? 1) - 1;
    if (n <= 0) this.held.delete(destination);
    else this.held.set(destination, n);
    this.total--;
  }

  /** Grants waiting leases in order, as far as slots allow (a waiter for a full destination does not block others). */
  private pump(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!; // i < waiters.length (the loop condition)
      const lease = this.tryGrant(w.destination);
      if (lease) {
        this.waiters.splice(i, 1);
        w.grant(lease);
      } else {
        i++;
      }
    }
  }
}
