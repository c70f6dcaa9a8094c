// The recipients the queue delivers to, from the envelope's: an alias on a local domain that
// points outside (EnvelopeRecipient.forwards) becomes one remote recipient per target, so each
// forward has its own state, retries and bounce like any remote recipient, grouped by its domain.
//
// Each forward remembers the alias it came from (forwardedBy): the queue rewrites its sender with
// SRS at the alias's domain (forward-sender.ts), so a receiver that checks SPF sees our domain.

import type { EnvelopeRecipient } from '../mail/envelope.js';

/**
 * In envelope order. The alias keeps its own entry for its local mailboxes (if any); each forward
 * follows it. A forward to an address already being sent to is dropped, so a target behind two
 * aliases of one message gets one copy. The result depends only on the envelope: the store's
 * per-recipient states are matched to it by position after a restart.
 */
export function deliveryRecipients(recipients: readonly EnvelopeRecipient[]): EnvelopeRecipient[] {
  const out: EnvelopeRecipient[] = [];
  const remote = new Set(recipients.filter((r) => r.mailboxes.length === 0 && !r.forwards?.length).map((r) => r.address.toLowerCase()));
  for (const r of recipients) {
    const forwards = r.forwards ?? [];
    if (forwards.length === 0) {
      out.push(r);
      continue;
    }
    if (r.mailboxes.length > 0) out.push({ address: r.address, params: r.params, mailboxes: r.mailboxes });
    for (const target of forwards) {
      if (remote.has(target.toLowerCase())) continue;
      remote.add(target.toLowerCase());
      out.push(forwardOf(r, target));
    }
  }
  return out;
}

/**
 * RFC 3461 5.2.7 (aliases): the expansion keeps the recipient's NOTIFY and ORCPT. Without an ORCPT
 * from the client, the alias itself is the original recipient (RFC 3461 4.2), so the sender's DSN
 * names the address they wrote (Original-Recipient) beside the one that failed (Final-Recipient).
 */
function forwardOf(alias: EnvelopeRecipient, target: string): EnvelopeRecipient {
  const orcpt = alias.params.orcpt ?? { addrType: isAscii(alias.address) ? 'rfc822' : 'utf-8', address: alias.address };
  return { address: target, params: { ...alias.params, orcpt }, mailboxes: [], forwardedBy: alias.address };
}

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}
