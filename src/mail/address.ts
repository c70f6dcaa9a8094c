// Normalizing mail addresses and domains, so that the store, policy and CLI compare like with like.
// Domains: lower case, one trailing dot dropped, IDN U-labels turned into A-labels (RFC 5890).
// Local parts: Unicode NFC (RFC 6531 section 3.3) and lower case; lookups are case-insensitive,
// as every deployed server makes them, although RFC 5321 2.4 lets a server be case-sensitive.

import { domainToASCII } from 'node:url';

const LDH_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const PLAIN_ASCII = /^[a-z0-9.-]+$/;

/**
 * A lower-case ASCII name that the IDNA conversion would return unchanged, so it can be skipped
 * (it was a tenth of a RCPT's cost at a hundred sessions): no A-label to check, and a last label
 * that the WHATWG host parser cannot take for a number ("0", "0x1f"), which it would turn into
 * an IPv4 address.
 */
function isPlainHostname(name: string): boolean {
  if (!PLAIN_ASCII.test(name) || name.includes('xn--')) return false;
  const last = name.slice(name.lastIndexOf('.') + 1);
  return /[a-z]/.test(last) && !last.startsWith('0x');
}

/** Returns the normalized domain, or undefined if it is not a valid hostname. */
export function normalizeDomain(domain: string): string | undefined {
  let d = domain.trim();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (d.length === 0 || d.length > 253) return undefined;
  const lower = d.toLowerCase();
  const ascii = isPlainHostname(lower) ? lower : domainToASCII(d.normalize('NFC').toLowerCase());
  if (ascii === '' || ascii.length > 253) return undefined;
  const labels = ascii.split('.');
  if (!labels.every((l) => LDH_LABEL.test(l))) return undefined;
  return ascii;
}

export interface SplitAddress {
  readonly local: string;
  readonly domain: string;
}

/**
 * Splits "local@domain" at the last "@" (a quoted local part may contain "@").
 * Returns undefined if there is no "@" or either side is empty.
 */
export function splitAddress(address: string): SplitAddress | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** Normalizes "local@domain" for storage and lookup; undefined if it is not a valid address. */
export function normalizeAddress(address: string): string | undefined {
  const parts = splitAddress(address.trim());
  if (!parts) return undefined;
  const domain = normalizeDomain(parts.domain);
  if (!domain) return undefined;
  const local = parts.local.normalize('NFC').toLowerCase();
  if (local.length > 64 * 4) return undefined;
  return `${local}@${domain}`;
}
