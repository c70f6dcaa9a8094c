// When to try a deferred recipient again, and when to give up: like Postfix, a short first wait
// that doubles with every attempt up to a ceiling, and a bounce once the message has been in the
// queue for the give-up time (Postfix: minimal_backoff_time, maximal_backoff_time,
// maximal_queue_lifetime). The waits are per recipient, so one slow domain does not hold up others.

export interface RetryPolicy {
  /** Wait after the first temporary failure. */
  readonly firstMs: number;
  /** Longest wait between two attempts. */
  readonly maxMs: number;
  /** Time in the queue after which a temporary failure becomes a bounce. */
  readonly giveUpMs: number;
  /** Time in the queue after which the sender gets one "delayed" DSN; 0: never. */
  readonly delayWarningMs: number;
}

/** Postfix-like defaults: [queue] retry_first "5m", retry_max "4h", give_up "5d", delay_warning "4h". */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  firstMs: 5 * 60_000,
  maxMs: 4 * 3_600_000,
  giveUpMs: 5 * 86_400_000,
  delayWarningMs: 4 * 3_600_000,
};

/** The wait after the `attempts`-th failed attempt (1 = the first). */
export function retryDelay(policy: RetryPolicy, attempts: number): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 40);
  return Math.min(policy.firstMs * 2 ** exponent, policy.maxMs);
}

/** True once a message received at `receivedAt` has been queued too long to keep trying. */
export function shouldGiveUp(policy: RetryPolicy, receivedAt: number, now: number): boolean {
  return now - receivedAt >= policy.giveUpMs;
}

/** True when the "delayed" DSN is due (it is sent once per message). */
export function delayWarningDue(policy: RetryPolicy, receivedAt: number, now: number): boolean {
  return policy.delayWarningMs > 0 && now - receivedAt >= policy.delayWarningMs;
}
