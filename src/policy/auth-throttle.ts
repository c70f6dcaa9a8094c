// Slowing down password guessing against SMTP AUTH (RFC 4954 section 9 asks servers to guard
// against it). Failures are counted per client IP and per account:
// - each failure reply is delayed, 0.5 s doubling per failure up to a cap, which costs a guesser
//   time while a person who mistyped barely notices;
// - an IP with too many failures in a window is locked out: AUTH gets "454 4.7.0" (RFC 4954 6,
//   temporary authentication failure) until the lockout ends. 454 rather than 421-and-disconnect:
//   the session stays in step and its error limit (limits.max_errors) ends it soon enough;
// - an account with too many failures from any IPs is locked too (a botnet spreads its guesses
//   over many IPs), but silently: it answers exactly like a wrong password, so a guesser learns
//   neither that the account exists nor that it is locked, and the right password does not work
//   until the lockout ends. The price: anyone can lock an account out for a while.
// A successful login clears the IP's count (not the account's: the owner logging in must not
// reset the count of a guesser working on the same account from elsewhere).
// IPv6 clients are counted per /64, the block one host usually gets; per address, a single
// machine could rotate through 2^64 addresses.
// State is in memory, bounded by LruMap: lockouts end with a restart of the server, which is
// acceptable for counters whose windows are minutes long. A worker process started again in a
// running server must not wipe them (a crash a client provokes would be a reset button):
// records() and restore() hand its live records over (src/server/shared-counts.ts).
//
// Every failure is logged as ONE line (keys are an interface, as in log/mail-log.ts):
//   { msg: "auth failed", client_ip, account, mechanism, failures, account_failures, delay_ms,
//     ip_locked, account_locked }
// account is the name the client claimed (null if none). contrib/fail2ban/filter.d/postern.conf
// matches this line by client_ip, which must stay its first key (pino writes msg last; account
// names are JSON-escaped, so they cannot fake the match).

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { reply, type Reply } from '../mail/reply.js';
import { normalizeAddress } from '../mail/address.js';
import { clientKey } from './connection-limiter.js';
import { LruMap } from '../util/lru-map.js';

export interface AuthThrottleOptions {
  /** Delay before the first failure reply, doubled for each further failure. */
  delayMs: number;
  maxDelayMs: number;
  ipMaxFailures: number;
  ipWindowMs: number;
  ipLockoutMs: number;
  accountMaxFailures: number;
  accountWindowMs: number;
  accountLockoutMs: number;
  /** Entries per table (IPs, accounts); the least recently used are forgotten first. */
  maxTracked: number;
  logger?: Logger;
  now?: () => number;
}

/** Options from the [auth.throttle] table (seconds there, milliseconds here). */
export function authThrottleOptions(
  t: Config['auth']['throttle'],
  extra: Pick<AuthThrottleOptions, 'logger' | 'now'> = {},
): AuthThrottleOptions {
  return {
    delayMs: t.delay_ms,
    maxDelayMs: t.max_delay_ms,
    ipMaxFailures: t.ip_max_failures,
    ipWindowMs: t.ip_window * 1000,
    ipLockoutMs: t.ip_lockout * 1000,
    accountMaxFailures: t.account_max_failures,
    accountWindowMs: t.account_window * 1000,
    accountLockoutMs: t.account_lockout * 1000,
    maxTracked: t.max_tracked,
    ...extra,
  };
}

export const AUTH_LOCKED_OUT: Reply = reply(454, '4.7.0', 'Too many failed authentication attempts, try again later');

/** Failures of one IP or account within the current window. Times are absolute (ms since the epoch). */
export interface FailureRecord {
  failures: number;
  windowStart: number;
  /** 0 when not locked. */
  lockedUntil: number;
}

/** The records still in force, least recently used first, under the keys they are counted by. */
export interface AuthThrottleRecords {
  readonly ips: readonly (readonly [string, FailureRecord])[];
  readonly accounts: readonly (readonly [string, FailureRecord])[];
}

interface Limit {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly lockoutMs: number;
}

export class AuthThrottle {
  private readonly ips: LruMap<string, FailureRecord>;
  private readonly accounts: LruMap<string, FailureRecord>;
  private opts: AuthThrottleOptions;
  private ipLimit!: Limit;
  private accountLimit!: Limit;
  private readonly now: () => number;

  constructor(opts: AuthThrottleOptions) {
    this.opts = opts;
    this.ips = new LruMap(opts.maxTracked);
    this.accounts = new LruMap(opts.maxTracked);
    this.setLimits(opts);
    this.now = opts.now ?? Date.now;
  }

  /**
   * New limits from a reloaded [auth.throttle]; the counts are kept. A record is judged by the
   * new limits from now on (a lockout already running ends when it was set to); smaller tables
   * forget their least recently used entries.
   */
  update(next: Omit<AuthThrottleOptions, 'logger' | 'now'>): void {
    this.opts = { ...this.opts, ...next };
    this.setLimits(this.opts);
    this.ips.resize(next.maxTracked);
    this.accounts.resize(next.maxTracked);
  }

  private setLimits(opts: AuthThrottleOptions): void {
    this.ipLimit = { maxFailures: opts.ipMaxFailures, windowMs: opts.ipWindowMs, lockoutMs: opts.ipLockoutMs };
    this.accountLimit = {
      maxFailures: opts.accountMaxFailures,
      windowMs: opts.accountWindowMs,
      lockoutMs: opts.accountLockoutMs,
    };
  }

  /** Before an AUTH exchange: undefined = go ahead; a Reply = refuse (the IP is locked out). */
  beforeAttempt(ip: string): Reply | undefined {
    return this.isLocked(this.ips, throttleKey(ip)) ? AUTH_LOCKED_OUT : undefined;
  }

  /**
   * After a failed exchange (or the right password for a locked account, see isAccountLocked):
   * how long to wait, in ms, before sending the 535. Also counts towards lockouts and logs.
   */
  failure(ip: string, account: string | undefined, mechanism?: string): number {
    const now = this.now();
    const byIp = this.count(this.ips, throttleKey(ip), this.ipLimit, now);
    const byAccount =
      account === undefined ? undefined : this.count(this.accounts, accountKey(account), this.accountLimit, now);
    const failures = Math.max(byIp.failures, byAccount?.failures ?? 0);
    const delay = Math.min(this.opts.maxDelayMs, this.opts.delayMs * 2 ** Math.min(failures - 1, 30));
    this.opts.logger?.info(
      {
        client_ip: ip,
        // Bounded: the name is the client's choice, and this line is stored.
        account: account === undefined ? null : account.slice(0, 320),
        mechanism: mechanism ?? null,
        failures: byIp.failures,
        account_failures: byAccount?.failures ?? null,
        delay_ms: delay,
        ip_locked: byIp.lockedUntil > now,
        account_locked: byAccount !== undefined && byAccount.lockedUntil > now,
      },
      'auth failed',
    );
    return delay;
  }

  /**
   * A failure another worker process saw (src/server/workers.ts), so that the counts are the
   * whole server's, not one process's: counted like failure(), but not logged again.
   */
  failureElsewhere(ip: string, account: string | undefined): void {
    const now = this.now();
    this.count(this.ips, throttleKey(ip), this.ipLimit, now);
    if (account !== undefined) this.count(this.accounts, accountKey(account), this.accountLimit, now);
  }

  success(ip: string, _account: string): void {
    const key = throttleKey(ip);
    // A lockout is not lifted by a success (none can happen through beforeAttempt anyway).
    if (!this.isLocked(this.ips, key)) this.ips.delete(key);
  }

  /**
   * The AUTH command asks this once the credentials are right: a locked account must then be
   * answered exactly like a wrong password (and counted with failure()).
   */
  isAccountLocked(account: string): boolean {
    return this.isLocked(this.accounts, accountKey(account));
  }

  /**
   * The records that still decide something: an expired one (window over, or lockout over) acts
   * exactly like none, so it is left out. At most maxTracked per table, as the tables are.
   */
  records(): AuthThrottleRecords {
    const now = this.now();
    return { ips: live(this.ips, this.ipLimit, now), accounts: live(this.accounts, this.accountLimit, now) };
  }

  /**
   * Takes another throttle's records() (a worker process started again gets the server's). Their
   * times are kept, so a window or lockout ends when it would have in the throttle that counted it.
   */
  restore(records: AuthThrottleRecords): void {
    for (const [key, r] of records.ips) this.ips.set(key, { ...r });
    for (const [key, r] of records.accounts) this.accounts.set(key, { ...r });
  }

  private isLocked(table: LruMap<string, FailureRecord>, key: string): boolean {
    const r = table.get(key);
    return r !== undefined && r.lockedUntil > this.now();
  }

  private count(table: LruMap<string, FailureRecord>, key: string, limit: Limit, now: number): FailureRecord {
    let r = table.get(key);
    const lockOver = r !== undefined && r.lockedUntil !== 0 && r.lockedUntil <= now;
    const windowOver = r !== undefined && r.lockedUntil === 0 && now - r.windowStart >= limit.windowMs;
    if (r === undefined || lockOver || windowOver) {
      r = { failures: 0, windowStart: now, lockedUntil: 0 };
    }
    r.failures++;
    if (r.lockedUntil === 0 && r.failures >= limit.maxFailures) r.lockedUntil = now + limit.lockoutMs;
    table.set(key, r);
    return r;
  }
}

function live(table: LruMap<string, FailureRecord>, limit: Limit, now: number): [string, FailureRecord][] {
  const kept: [string, FailureRecord][] = [];
  for (const [key, r] of table.entries()) {
    const inForce = r.lockedUntil === 0 ? now - r.windowStart < limit.windowMs : r.lockedUntil > now;
    if (inForce) kept.push([key, { ...r }]);
  }
  return kept;
}

/** The IP as counted: canonical IPv4 or IPv6, and IPv6 cut to its /64. */
export function throttleKey(ip: string): string {
  const key = clientKey(ip);
  return key.includes(':') ? ipv6Prefix64(key) : key;
}

function ipv6Prefix64(ip: string): string {
  const address = ip.split('%', 1)[0] ?? ip; // a zone id names an interface, not a host
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  const prefix = groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16));
  return `${prefix.join(':')}::/64`;
}

function accountKey(account: string): string {
  return normalizeAddress(account) ?? account.toLowerCase();
}
