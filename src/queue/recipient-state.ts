// Where each recipient of a queued message stands, and how one delivery outcome moves it on:
//
//   queued --delivered--> delivered
//     |  \---failed (5xx, or deferred past give_up)--> failed (bounced)
//     \--deferred (4xx, no answer)--> deferred --(its retry time comes)--> tried again
//
// The spool remembers which recipients are finished (so a restart never repeats them); the store
// remembers the rest (attempts, retry time, last reply) for the schedule and for `postern queue`.

import type { EnvelopeRecipient } from '../mail/envelope.js';
import type { QueueRecipientState, RecipientProgress, RecipientStatus } from '../store/store.js';
import { replyLine } from '../mail/reply.js';
import type { DeliveryOutcome } from './courier.js';
import { retryDelay, shouldGiveUp, type RetryPolicy } from './retry-policy.js';

/** The store's RecipientProgress, kept up to date in memory by applyOutcome. */
export type RecipientState = { -readonly [K in keyof RecipientProgress]: RecipientProgress[K] } & {
  readonly recipient: EnvelopeRecipient;
  /** Enhanced status of the last reply (for DSNs). */
  lastStatus: string | null;
  /**
   * Delivered to a next hop that took over NOTIFY (RFC 3461 4.1): a success report is then its
   * job, not ours. Only for the attempt at hand; not stored.
   */
  dsnPassedOn: boolean;
};

/** The spool's mark for a finished recipient (delivered or bounced); mailbox marks have no prefix. */
export function finishedMark(address: string): string {
  return `rcpt:${address}`;
}

export function isFinished(s: RecipientState): boolean {
  return s.status === 'delivered' || s.status === 'failed';
}

export function isDue(s: RecipientState, now: number): boolean {
  return !isFinished(s) && (s.nextAttemptAt ?? 0) <= now;
}

/**
 * States for a message read back from the spool: finished per the spool, everything else from the
 * store's last record of it (which may be a little behind: then a recipient is tried early).
 */
export function restoreStates(
  recipients: readonly EnvelopeRecipient[],
  marks: ReadonlySet<string>,
  stored: readonly QueueRecipientState[] | undefined,
): RecipientState[] {
  return recipients.map((recipient, i) => {
    const known = stored?.[i]?.address === recipient.address ? stored[i] : undefined;
    const state = fresh(recipient);
    if (known) {
      Object.assign(state, progressOf(known));
      // Finished is the spool's word (below), not the store's, which may be ahead of it.
      state.status = known.status === 'deferred' ? 'deferred' : 'queued';
    }
    const localDone = recipient.mailboxes.length > 0 && recipient.mailboxes.every((m) => marks.has(m));
    if (marks.has(finishedMark(recipient.address)) || localDone) {
      state.status = known?.status === 'failed' ? 'failed' : 'delivered';
      state.nextAttemptAt = null;
    }
    return state;
  });
}

export function fresh(recipient: EnvelopeRecipient): RecipientState {
  return {
    recipient,
    status: 'queued',
    attempts: 0,
    nextAttemptAt: null,
    lastAttemptAt: null,
    lastReply: null,
    lastReason: null,
    remoteHost: null,
    lastStatus: null,
    dsnPassedOn: false,
  };
}

/**
 * Applies one attempt's outcome. A temporary failure on a message older than give_up becomes a
 * permanent one (RFC 5321 4.5.4.1: retries continue for at least 4-5 days, then the mail is
 * returned). Returns the new status.
 */
export function applyOutcome(
  s: RecipientState,
  outcome: DeliveryOutcome,
  ctx: { policy: RetryPolicy; receivedAt: number; now: number },
): RecipientStatus {
  s.attempts++;
  s.lastAttemptAt = ctx.now;
  s.lastReply = outcome.reply ? replyLine(outcome.reply) : '';
  s.remoteHost = outcome.remoteHost ?? null;
  switch (outcome.kind) {
    case 'delivered':
      s.status = 'delivered';
      s.lastReason = null;
      s.lastStatus = outcome.reply.enhanced ?? '2.0.0';
      s.dsnPassedOn = outcome.dsnPassedOn ?? false;
      s.nextAttemptAt = null;
      break;
    case 'failed':
      s.status = 'failed';
      s.lastReason = outcome.reason;
      s.lastStatus = outcome.status;
      s.nextAttemptAt = null;
      break;
    case 'deferred':
      s.lastReason = outcome.reason;
      // RFC 3463 4.4.7: delivery time expired, when the peer gave no code of its own.
      s.lastStatus = outcome.reply?.enhanced ?? '4.4.7';
      if (shouldGiveUp(ctx.policy, ctx.receivedAt, ctx.now)) {
        s.status = 'failed';
        s.lastReason = `${outcome.reason}; gave up after trying for ${describeAge(ctx.now - ctx.receivedAt)}`;
        s.nextAttemptAt = null;
      } else {
        s.status = 'deferred';
        s.nextAttemptAt = ctx.now + retryDelay(ctx.policy, s.attempts);
      }
      break;
  }
  return s.status;
}

/** For the store and `postern queue`. */
export function toStored(s: RecipientState): QueueRecipientState {
  const { address, params } = s.recipient;
  return { ...progressOf(s), address, notify: params.notify ?? null, orcpt: params.orcpt ?? null };
}

/** Just the RecipientProgress fields of a state or a stored row: the one list of them. */
function progressOf(p: RecipientProgress): RecipientProgress {
  const { status, attempts, nextAttemptAt, lastAttemptAt, lastReply, lastReason, remoteHost } = p;
  return { status, attempts, nextAttemptAt, lastAttemptAt, lastReply, lastReason, remoteHost };
}

function describeAge(ms: number): string {
  const hours = ms / 3_600_000;
  if (hours >= 48) return `${Math.round(hours / 24)} days`;
  if (hours >= 1) return `${Math.round(hours)} hours`;
  const minutes = Math.round(ms / 60_000);
  if (minutes >= 1) return `${minutes} minutes`;
  return `${Math.round(ms / 1000)} seconds`;
}
