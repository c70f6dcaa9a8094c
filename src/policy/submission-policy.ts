// The three parts of the submission policy, built from the configuration: which senders an
// account may use, how much it may send, and how password guessing is slowed down. The server
// builds them once; the SMTP session's AUTH, MAIL, RCPT and DATA handlers ask them.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { DirectoryStore, SubmissionStore } from '../store/store.js';
import { AuthThrottle, authThrottleOptions } from './auth-throttle.js';
import { AccountRateLimiter, type AccountRates } from './rate-limits.js';
import { SenderIdentityPolicy } from './sender-identity.js';

export interface SubmissionPolicy {
  readonly senderIdentity: SenderIdentityPolicy;
  /** Call close() on shutdown, before the store closes: it saves the last counts. */
  readonly rateLimiter: AccountRates;
  readonly authThrottle: AuthThrottle;
}

/** `rates`: counts kept elsewhere (another process); by default this process keeps them. */
export function createSubmissionPolicy(
  store: DirectoryStore & SubmissionStore,
  config: Config,
  logger: Logger,
  rates?: AccountRates,
): SubmissionPolicy {
  return {
    senderIdentity: new SenderIdentityPolicy(store, {
      defaultPolicy: config.submission.sender_policy,
      recipientDelimiter: config.recipient_delimiter,
    }),
    rateLimiter: rates ?? accountRateLimiter(store, config, logger),
    authThrottle: new AuthThrottle(authThrottleOptions(config.auth.throttle, { logger })),
  };
}

export function accountRateLimiter(store: SubmissionStore, config: Config, logger: Logger): AccountRateLimiter {
  return new AccountRateLimiter(store, {
    maxMessagesPerHour: config.submission.max_messages_per_hour,
    maxRecipientsPerDay: config.submission.max_recipients_per_day,
    logger,
  });
}
