// A DNS question as the doctor asks it: the records, "none" (NXDOMAIN or NODATA: the name or
// type is not published), or the reason no answer came (a timeout, SERVFAIL), which makes the
// check UNKNOWN rather than FAIL.

import { DnsError } from '../dns/resolver.js';

export type Answer<T> =
  | { readonly kind: 'found'; readonly records: T }
  | { readonly kind: 'none' }
  | { readonly kind: 'error'; readonly reason: string };

export async function ask<T>(lookup: () => Promise<T>): Promise<Answer<T>> {
  try {
    return { kind: 'found', records: await lookup() };
  } catch (err) {
    if (err instanceof DnsError && err.code !== 'TEMPFAIL') return { kind: 'none' };
    return { kind: 'error', reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Each TXT record as one string (RFC 7208 section 3.3, RFC 6376 section 3.6.2.2: strings are joined without spaces). */
export function joinedTxt(records: readonly (readonly string[])[]): string[] {
  return records.map((strings) => strings.join(''));
}

/** Names as DNS answers carry them, for comparison: lower case, no final dot. */
export function sameName(a: string, b: string): boolean {
  const norm = (n: string): string => n.toLowerCase().replace(/\.$/, '');
  return norm(a) === norm(b);
}
