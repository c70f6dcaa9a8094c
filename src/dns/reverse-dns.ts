// Forward-confirmed reverse DNS: the PTR names of an address, and which of them lead back to it
// through their own A (or AAAA) records. Receivers check it of the hosts that send to them (RFC
// 8601 section 3 "iprev"); `postern probe` checks it of the servers it tests. The number of names
// followed is bounded: a PTR set is the address owner's to make as large as it likes, and each
// name costs a lookup (RFC 7208 section 4.6.4 stops at ten for the same reason).

import { isIP } from 'node:net';
import { sameAddress } from '../util/network-list.js';
import { DnsError, type DnsClient } from './resolver.js';
import { reverseName } from './reverse-name.js';

/** PTR names followed at most; the rest are ignored, as RFC 7208 section 5.5 does for "ptr". */
export const MAX_REVERSE_NAMES = 10;

export interface ReverseDns {
  /** The PTR names (lower case, no final dot), at most MAX_REVERSE_NAMES of them. */
  readonly names: readonly string[];
  /** The names whose A/AAAA records include the address. */
  readonly confirmed: readonly string[];
  /**
   * Why no name could be confirmed, when a lookup failed: `temporary` when asking again may
   * answer (a timeout, SERVFAIL), false for an answer that says there is nothing (NXDOMAIN).
   */
  readonly error?: { readonly message: string; readonly temporary: boolean } | undefined;
}

export async function lookUpReverseDns(dns: DnsClient, address: string): Promise<ReverseDns> {
  const name = reverseName(address);
  if (name === undefined) return { names: [], confirmed: [], error: { message: `${address} is not an IP address`, temporary: false } };
  let names: string[];
  try {
    names = (await dns.ptr(name)).map((n) => n.replace(/\.$/, '').toLowerCase()).slice(0, MAX_REVERSE_NAMES);
  } catch (err) {
    return { names: [], confirmed: [], error: describe(err) };
  }
  const forward = await Promise.all(
    names.map(async (n) => {
      try {
        const addresses = await (isIP(address) === 6 ? dns.aaaa(n) : dns.a(n));
        return { name: n, confirmed: addresses.some((a) => sameAddress(a, address)) };
      } catch (err) {
        return { name: n, confirmed: false, error: describe(err) };
      }
    }),
  );
  const confirmed = forward.filter((f) => f.confirmed).map((f) => f.name);
  // Only a name that could not be asked leaves the question open; one that answered "no" closes it.
  const error = confirmed.length === 0 ? forward.find((f) => f.error?.temporary)?.error : undefined;
  return { names, confirmed, ...(error ? { error } : {}) };
}

function describe(err: unknown): { message: string; temporary: boolean } {
  const message = err instanceof Error ? err.message : String(err);
  return { message, temporary: !(err instanceof DnsError && err.permanent) };
}
