// One delivery attempt of one message to the local mailboxes its recipients resolved to at RCPT
// time. Copies go out in parallel; each mailbox gets at most one copy, even when two recipients
// (an alias and its target, say) lead to the same mailbox.

import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import type { Maildirs } from './maildir.js';

export interface LocalDeliveryResult {
  /** Mailboxes whose copy is now durable. */
  readonly delivered: string[];
  readonly failed: { readonly mailbox: string; readonly error: unknown }[];
}

/** Every distinct local mailbox of the message, in recipient order. */
export function localMailboxes(envelope: Envelope): string[] {
  return [...new Set(envelope.recipients.flatMap((r) => r.mailboxes))];
}

/** Recipients that resolve to no local mailbox: they need delivery elsewhere. */
export function remoteRecipients(envelope: Envelope): EnvelopeRecipient[] {
  return envelope.recipients.filter((r) => r.mailboxes.length === 0);
}

/** Delivers to every local mailbox not in `already` (those got their copy in an earlier attempt). */
export async function deliverLocally(
  maildirs: Maildirs,
  envelope: Envelope,
  message: Buffer,
  already: ReadonlySet<string>,
): Promise<LocalDeliveryResult> {
  const todo = localMailboxes(envelope).filter((m) => !already.has(m));
  const outcomes = await Promise.allSettled(todo.map((m) => maildirs.deliver(m, envelope.sender, message)));
  const result: LocalDeliveryResult = { delivered: [], failed: [] };
  outcomes.forEach((o, i) => {
    const mailbox = todo[i]!;
    if (o.status === 'fulfilled') result.delivered.push(mailbox);
    else result.failed.push({ mailbox, error: o.reason });
  });
  return result;
}
