// Reading a RCPT TO address as the session hands it over ("local@domain", source route already
// removed, quotes kept), into the shape the policy decides on. No lookups happen here.

import { normalizeDomain, splitAddress } from '../mail/address.js';

export type RecipientAddress =
  /** RFC 5321 4.5.1: "RCPT TO:<Postmaster>" without a domain must be accepted. */
  | { readonly kind: 'bare-postmaster'; readonly address: string }
  /** "[192.0.2.1]" or "[IPv6:...]": we never accept mail for address literals. */
  | { readonly kind: 'literal'; readonly address: string }
  | { readonly kind: 'invalid'; readonly address: string }
  | {
      readonly kind: 'domain';
      /** Local part as given, normalized domain: what the envelope records. */
      readonly address: string;
      /** The local part unquoted, NFC and lower case: what lookups use. */
      readonly lookupLocal: string;
      /** Lower case, A-labels, no trailing dot. */
      readonly domain: string;
    };

export function parseRecipient(recipient: string): RecipientAddress {
  if (recipient.toLowerCase() === 'postmaster') return { kind: 'bare-postmaster', address: recipient };
  const parts = splitAddress(recipient);
  if (!parts) return { kind: 'invalid', address: recipient };
  if (parts.domain.startsWith('[')) return { kind: 'literal', address: recipient };
  const domain = normalizeDomain(parts.domain);
  if (domain === undefined) return { kind: 'invalid', address: recipient };
  return {
    kind: 'domain',
    address: `${parts.local}@${domain}`,
    lookupLocal: lookupForm(parts.local),
    domain,
  };
}

/**
 * The local part as lookups see it. A quoted local part means the same as the unquoted one
 * (RFC 5321 4.1.2: quoted-pairs stand for the character itself), so `"alice"@d` is alice@d.
 */
export function lookupForm(local: string): string {
  const unquoted =
    local.length >= 2 && local.startsWith('"') && local.endsWith('"')
      ? local.slice(1, -1).replace(/\\(.)/gs, '$1')
      : local;
  return unquoted.normalize('NFC').toLowerCase();
}

/**
 * Source-routing tricks hidden in a local part: "user%remote@local" (the percent hack),
 * "remote!user@local" (UUCP bang path) and "\"user@remote\"@local". A server that honours any of
 * them forwards mail for strangers, so they are relay attempts (RFC 5321 3.6.1, 7.1; RFC 2505 3.2).
 */
export function hasRoutingTrick(lookupLocal: string): boolean {
  return /[%!@]/.test(lookupLocal);
}
