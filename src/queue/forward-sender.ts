// The envelope sender of one delivery. Mail that reached our MX and leaves again only because a
// local alias points elsewhere is forwarded: its sender becomes an SRS0 address at the alias's
// domain (src/srs/), so the receiver's SPF check (RFC 7208) asks about our domain, which
// authorises us, and a bounce comes back to us to be reversed. Everything else keeps its sender:
// the null sender (bounces, RFC 5321 4.5.5, must never get a reverse path), mail our users submit
// (their own domain's SPF covers us), and a sender already at the forwarding domain.

import type { Envelope, EnvelopeRecipient } from '../mail/envelope.js';
import { splitAddress } from '../mail/address.js';
import type { SrsCodec } from '../srs/srs.js';

export function forwardSender(srs: SrsCodec | undefined, envelope: Envelope, recipient: EnvelopeRecipient): string {
  const { sender, arrival } = envelope;
  if (!srs || recipient.forwardedBy === undefined || sender === '') return sender;
  if (arrival.listener !== 'mx' || arrival.authUser !== undefined) return sender;
  const forwarder = splitAddress(recipient.forwardedBy)?.domain.toLowerCase();
  const own = splitAddress(sender)?.domain.toLowerCase();
  if (!forwarder || own === undefined || own === forwarder) return sender;
  return srs.forward(sender, forwarder);
}
