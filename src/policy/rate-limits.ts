// Per-account submission limits: messages per hour (checked at MAIL) and recipients per day
// (checked at RCPT), so that a stolen password, or a compromised client, cannot turn an account
// into a spam cannon. Over the limit the answer is 450 4.7.1: temporary, so a legitimate client
// keeps the message and retries later (RFC 5321 4.2.5, RFC 3463 X.7.1 "not authorized").
//
// Store traffic (this runs for every message): one read of the account's limit overrides at MAIL,
// so `postern user limits` takes effect on the next message; the counters are read once per
// account per process and then kept here, in memory, and written behind: dirty accounts are saved
// within a second of `record`, and by close(). Crash window: a crash loses at most the last
// second's counts, which errs on the side of the account. Because memory is authoritative, one
// store must be served by one server process.
// Windows: sliding window counters (rate-window.ts), an hour for messages and a day for recipients.

import type { Logger } from 'pino';
import { reply, type Reply } from '../mail/reply.js';
import type { SubmissionCounters, SubmissionStore, UserLimits } from '../store/store.js';
import { normalizeAddress } from '../mail/address.js';
import { addToWindow, countInWindow, DAY_MS, HOUR_MS } from './rate-window.js';

export interface RateLimitOptions {
  /** Default messages per account per hour; 0 = unlimited. */
  maxMessagesPerHour: number;
  /** Default recipients per account per day; 0 = unlimited. */
  maxRecipientsPerDay: number;
  now?: () => number;
  /** For counters that could not be saved (they are kept and retried). */
  logger?: Logger;
  /** How long counts may stay unsaved; default 1000 ms. */
  flushIntervalMs?: number;
}

interface AccountUsage {
  counters: SubmissionCounters;
  /** The overrides read at the last MAIL; undefined until then. */
  limits: UserLimits | undefined;
}

/**
 * What the session policy asks of the per-account counts: this process's AccountRateLimiter, or,
 * with several worker processes, the one in the queue owner (src/server/workers.ts), so that the
 * counts are not multiplied by the number of workers.
 */
export type AccountRates = Pick<AccountRateLimiter, 'checkMessage' | 'checkRecipient' | 'record' | 'close'>;

export class AccountRateLimiter {
  private readonly usage = new Map<string, AccountUsage>();
  private readonly dirty = new Set<string>();
  private readonly now: () => number;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: SubmissionStore,
    private opts: RateLimitOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** New default limits from a reloaded [submission]; the counts are kept. */
  update(limits: Pick<RateLimitOptions, 'maxMessagesPerHour' | 'maxRecipientsPerDay'>): void {
    this.opts = { ...this.opts, ...limits };
  }

  /** At MAIL FROM: may the account start another message? */
  async checkMessage(account: string): Promise<Reply | undefined> {
    const key = accountKey(account);
    const limits = await this.store.getUserLimits(key);
    const usage = await this.usageOf(key);
    usage.limits = limits;
    const max = limits.maxMessagesPerHour ?? this.opts.maxMessagesPerHour;
    if (max === 0) return undefined;
    if (countInWindow(usage.counters.messages, this.now(), HOUR_MS) + 1 <= max) return undefined;
    return reply(450, '4.7.1', `${key} has reached its limit of ${max} messages per hour; try again later`);
  }

  /** At RCPT TO: may the account add one more recipient to the `alreadyInTransaction` accepted so far? */
  async checkRecipient(account: string, alreadyInTransaction: number): Promise<Reply | undefined> {
    const key = accountKey(account);
    const usage = await this.usageOf(key);
    usage.limits ??= await this.store.getUserLimits(key);
    const max = usage.limits.maxRecipientsPerDay ?? this.opts.maxRecipientsPerDay;
    if (max === 0) return undefined;
    const used = countInWindow(usage.counters.recipients, this.now(), DAY_MS);
    if (used + alreadyInTransaction + 1 <= max) return undefined;
    return reply(450, '4.7.1', `${key} has reached its limit of ${max} recipients per day; try again later`);
  }

  /** Once the message is accepted (queued): counts it and its recipients. */
  async record(account: string, recipients: number): Promise<void> {
    const key = accountKey(account);
    const usage = await this.usageOf(key);
    const now = this.now();
    usage.counters = {
      messages: addToWindow(usage.counters.messages, now, HOUR_MS, 1),
      recipients: addToWindow(usage.counters.recipients, now, DAY_MS, recipients),
    };
    this.dirty.add(key);
    this.scheduleFlush();
  }

  /** Saves every unsaved count now. */
  async flush(): Promise<void> {
    // Chained, so two flushes never write the same accounts out of order.
    this.flushing = this.flushing.then(() => this.save());
    return this.flushing;
  }

  /** Saves what is unsaved and stops the timer; call before closing the store. */
  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
  }

  private async usageOf(key: string): Promise<AccountUsage> {
    const known = this.usage.get(key);
    if (known) return known;
    const stored = await this.store.loadSubmissionCounters(key);
    // Another call may have loaded (and counted) while this one waited; its state wins.
    const usage = this.usage.get(key) ?? { counters: stored ?? EMPTY_COUNTERS, limits: undefined };
    this.usage.set(key, usage);
    return usage;
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.opts.flushIntervalMs ?? 1000);
    // Pending counts alone must not keep the process alive; close() saves them on shutdown.
    this.flushTimer.unref();
  }

  private async save(): Promise<void> {
    if (this.dirty.size === 0) return;
    const batch = new Map<string, SubmissionCounters>();
    for (const key of this.dirty) batch.set(key, (this.usage.get(key) as AccountUsage).counters);
    this.dirty.clear();
    try {
      await this.store.saveSubmissionCounters(batch);
    } catch (err) {
      for (const key of batch.keys()) this.dirty.add(key);
      this.opts.logger?.warn({ err, accounts: batch.size }, 'cannot save submission counters; will retry');
      this.scheduleFlush();
      return;
    }
    this.forgetIdle();
  }

  /** Accounts with nothing left to count are dropped, so memory follows the active accounts only. */
  private forgetIdle(): void {
    const now = this.now();
    for (const [key, usage] of this.usage) {
      if (this.dirty.has(key)) continue;
      const { messages, recipients } = usage.counters;
      if (countInWindow(messages, now, HOUR_MS) === 0 && countInWindow(recipients, now, DAY_MS) === 0) {
        this.usage.delete(key);
      }
    }
  }
}

const EMPTY_COUNTERS: SubmissionCounters = {
  messages: { start: 0, current: 0, previous: 0 },
  recipients: { start: 0, current: 0, previous: 0 },
};

function accountKey(account: string): string {
  return normalizeAddress(account) ?? account;
}
