// A small cache of DNS answers, so that a queue run delivering many messages to one domain asks
// for its MX once. An entry lives no longer than its record TTL (RFC 1035 section 3.2.1) when
// the answer carries one, and never longer than the configured ceiling. Permanent negative
// answers (NXDOMAIN, NODATA) are cached too (RFC 2308); temporary failures never are, so the
// next attempt asks again. Questions already in flight are shared, not repeated.

import { DnsError } from './dns-error.js';

/** What a lookup produced, and how long it may be reused (undefined: use the ceiling). */
export interface TimedAnswer<T> {
  readonly value: T;
  readonly ttlSeconds?: number;
}

type Entry = { readonly expires: number } & ({ readonly kind: 'answer'; readonly value: unknown } | { readonly kind: 'error'; readonly error: DnsError });

/** Entries kept at most; the oldest are dropped first. */
const MAX_ENTRIES = 10_000;

export class AnswerCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly maxSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get<T>(key: string, lookup: () => Promise<TimedAnswer<T>>): Promise<T> {
    const entry = this.entries.get(key);
    if (entry && entry.expires > this.now()) {
      if (entry.kind === 'error') throw entry.error;
      return entry.value as T;
    }
    this.entries.delete(key);
    const pending = this.inFlight.get(key);
    if (pending) return pending as Promise<T>;
    const promise = this.fill(key, lookup).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return promise;
  }

  private async fill<T>(key: string, lookup: () => Promise<TimedAnswer<T>>): Promise<T> {
    try {
      const answer = await lookup();
      this.store(key, { kind: 'answer', value: answer.value, expires: this.expiry(answer.ttlSeconds) });
      return answer.value;
    } catch (err) {
      if (err instanceof DnsError && err.permanent) {
        this.store(key, { kind: 'error', error: err, expires: this.expiry(undefined) });
      }
      throw err;
    }
  }

  private expiry(ttlSeconds: number | undefined): number {
    const seconds = Math.min(ttlSeconds ?? this.maxSeconds, this.maxSeconds);
    return this.now() + seconds * 1000;
  }

  private store(key: string, entry: Entry): void {
    if (this.entries.size >= MAX_ENTRIES) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, entry);
  }
}
