// What the queue needs from the bounce service (src/bounce/): someone who decides whether a
// delivery deserves a notice and queues it. The queue builds its sender from a factory it is
// given, handing it the way back in (SubmitNotice), so neither imports the other's code.

import type { Envelope, QueueId } from '../mail/envelope.js';
import type { RecipientState } from './recipient-state.js';
import type { RetryPolicy } from './retry-policy.js';

export type NoticeKind = 'failed' | 'delayed' | 'delivered';

export interface OriginalMessage {
  readonly queueId: QueueId;
  readonly envelope: Envelope;
  readonly message: Buffer;
}

export interface NoticeSender {
  /**
   * Sends one notice about these recipients, if anyone should get one. Resolves once it is
   * queued; returns its queue id, or undefined when none was due.
   */
  send(original: OriginalMessage, kind: NoticeKind, states: readonly RecipientState[], policy: RetryPolicy): Promise<QueueId | undefined>;
}

/** Queues a generated message (spooled before it resolves). */
export type SubmitNotice = (envelope: Envelope, message: Buffer) => Promise<QueueId>;
