// Remembers recent successful password checks, so that a client that logs in for every message
// (web applications, scripts) does not cost a full scrypt each time — about 120 ms of CPU here,
// which would cap PLAIN/LOGIN logins at a handful per second per core. Dovecot's auth_cache does
// the same.
//
// What is kept is an HMAC, under a random per-process key, of the account's stored hash and the
// password: never the password, and nothing usable outside this process. Binding the stored hash
// in means a password change (new hash) invalidates the entry at once. Only successes are cached:
// a wrong password or an unknown account always pays the full scrypt, so the fast path reveals
// nothing an attacker does not already know (it is taken only with the right password).

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { LruMap } from '../util/lru-map.js';

const PROCESS_KEY = randomBytes(32);

export interface VerifiedPasswordCacheOptions {
  /** How long a successful check is trusted. */
  readonly ttlMs: number;
  /** Accounts remembered at most (least recently used forgotten first). */
  readonly capacity: number;
  readonly now?: () => number;
}

export class VerifiedPasswordCache {
  private readonly entries: LruMap<string, { tag: Buffer; expires: number }>;
  private readonly now: () => number;

  constructor(private readonly opts: VerifiedPasswordCacheOptions) {
    this.entries = new LruMap(opts.capacity);
    this.now = opts.now ?? Date.now;
  }

  /** True if this password was verified against this stored hash within the TTL. */
  matches(account: string, passwordHash: string, password: string): boolean {
    const entry = this.entries.get(account);
    if (entry === undefined) return false;
    if (entry.expires <= this.now()) {
      this.entries.delete(account);
      return false;
    }
    return timingSafeEqual(entry.tag, tagOf(account, passwordHash, password));
  }

  remember(account: string, passwordHash: string, password: string): void {
    this.entries.set(account, { tag: tagOf(account, passwordHash, password), expires: this.now() + this.opts.ttlMs });
  }
}

function tagOf(account: string, passwordHash: string, password: string): Buffer {
  return createHmac('sha256', PROCESS_KEY).update(account).update('\0').update(passwordHash).update('\0').update(password, 'utf8').digest();
}
