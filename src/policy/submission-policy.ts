// The three parts of the submission policy, built from the configuration: which senders an
// account may use, how much it may send, and how password guessing is slowed down. The server
// builds them once; the SMTP session's AUTH, MAIL, RCPT and DATA handlers ask them.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { DirectoryStore, SubmissionStore } from '../store/store.js';
import { AuthThrottle, authThrottleOptions } from './auth-throttle.js';
import { AccountRateLimiter, type AccountRates } from './rate-limits.js';
import { SenderIdentityPolicy, type SenderIdentityOptions } from './sender-identity.js';

export interface SubmissionPolicy {
  readonly senderIdentity: SenderIdentityPolicy;
  /** Call close() on shutdown, before the store closes: it saves the last counts. */
  readonly rateLimiter: AccountRates;
  readonly authThrottle: AuthThrottle;
  /**
   * A reloaded config's [submission] and [auth.throttle]: the counts and lockouts are kept.
   */
  update(next: Config): void;
}

/** `rates`: counts kept elsewhere (another process); by default this process keeps them. */
export function createSubmissionPolicy(
  store: DirectoryStore & SubmissionStore,
  config: Config,
  logger: Logger,
  rates?: AccountRates,
): SubmissionPolicy {
  const senderIdentity = new SenderIdentityPolicy(store, senderIdentityOptions(config));
  const rateLimiter = rates ?? accountRateLimiter(store, config, logger);
  const authThrottle = new AuthThrottle(authThrottleOptions(config.auth.throttle, { logger }));
  return {
    senderIdentity,
    rateLimiter,
    authThrottle,
    update(next) {
      senderIdentity.update(senderIdentityOptions(next));
      // Counts kept in another process (worker mode's queue owner) are that process's to update.
      if (rateLimiter instanceof AccountRateLimiter) rateLimiter.update(accountLimits(next));
      authThrottle.update(authThrottleOptions(next.auth.throttle));
    },
  };
}

function senderIdentityOptions(config: Config): SenderIdentityOptions {
  return { defaultPolicy: config.submission.sender_policy, recipientDelimiter: config.recipient_delimiter };
}

export function accountRateLimiter(store: SubmissionStore, config: Config, logger: Logger): AccountRateLimiter {
  return new AccountRateLimiter(store, { ...accountLimits(config), logger });
}

/** The default per-account limits of [submission]. */
export function accountLimits(config: Config): { maxMessagesPerHour: number; maxRecipientsPerDay: number } {
  return {
    maxMessagesPerHour: config.submission.max_messages_per_hour,
    maxRecipientsPerDay: config.submission.max_recipients_per_day,
  };
}
