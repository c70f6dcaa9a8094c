// The three parts of the submission policy, built from the configuration: which senders an
// account may use, how much it may send, and how password guessing is slowed down. The server
// builds them once; the SMTP session's AUTH, MAIL, RCPT and DATA handlers ask them.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { DirectoryStore, SubmissionStore } from '../store/store.js';
import { AuthThrottle, authThrottleOptions } from './auth-throttle.js';
import { AccountRateLimiter } from './rate-limits.js';
import { SenderIdentityPolicy } from './sender-identity.js';

export interface SubmissionPolicy {
  readonly senderIdentity: SenderIdentityPolicy;
  /** Call close() on shutdown, before the store closes: it saves the last counts. */
  readonly rateLimiter: AccountRateLimiter;
  readonly authThrottle: AuthThrottle;
}

export function createSubmissionPolicy(store: DirectoryStore & SubmissionStore, config: Config, logger: Logger): SubmissionPolicy {
  return {
    senderIdentity: new SenderIdentityPolicy(store, {
      defaultPolicy: config.submission.sender_policy,
      recipientDelimiter: config.recipient_delimiter,
    }),
    rateLimiter: new AccountRateLimiter(store, {
      maxMessagesPerHour: config.submission.max_messages_per_hour,
      maxRecipientsPerDay: config.submission.max_recipients_per_day,
      logger,
    }),
    authThrottle: new AuthThrottle(authThrottleOptions(config.auth.throttle, { logger })),
  };
}
