// Alias sources are an address ("sales@example.test") or "@domain", the domain's catch-all.

import { normalizeAddress, normalizeDomain } from '../mail/address.js';

/** The normalized source, or undefined if it is neither an address nor "@domain". */
export function normalizeAliasSource(source: string): string | undefined {
  const s = source.trim();
  if (s.startsWith('@')) {
    const domain = normalizeDomain(s.slice(1));
    return domain === undefined ? undefined : `@${domain}`;
  }
  return normalizeAddress(s);
}
