// The DNS client as mailauth wants it: one function answering node:dns-style questions, so that
// every SPF, DKIM, DMARC and ARC lookup goes through our resolvers and answer cache (and, in
// tests, the loopback DNS server).

import { DnsError, type DnsClient } from './resolver.js';

/**
 * mailauth asks node:dns-style questions and tells a void lookup (RFC 7208 section 4.6.4) from a failure
 * by the node error code; our client's errors say NXDOMAIN, NODATA or TEMPFAIL.
 */
export function mailauthResolver(dns: DnsClient): (name: string, rrtype: string) => Promise<never> {
  const lookups: Record<string, (name: string) => Promise<unknown>> = {
    TXT: (n) => dns.txt(n),
    A: (n) => dns.a(n),
    AAAA: (n) => dns.aaaa(n),
    MX: (n) => dns.mx(n),
    PTR: (n) => dns.ptr(n),
    // DMARC's np= asks whether the author domain exists at all (RFC 9989 section 4.10.1).
    CNAME: (n) => dns.cname(n),
  };
  return async (name, rrtype) => {
    const lookup = lookups[rrtype.toUpperCase()];
    if (!lookup) throw Object.assign(new Error(`no ${rrtype} lookups here`), { code: 'ENOTIMP' });
    try {
      return (await lookup(name)) as never;
    } catch (err) {
      if (!(err instanceof DnsError)) throw err;
      const code = err.code === 'NXDOMAIN' ? 'ENOTFOUND' : err.code === 'NODATA' ? 'ENODATA' : 'ESERVFAIL';
      throw Object.assign(new Error(err.message), { code });
    }
  };
}
