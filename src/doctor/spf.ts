// Whether a domain's SPF record authorises one of our addresses: RFC 7208 check_host() for
// postmaster@domain (src/dns/spf-check.ts), asked through the doctor's --dns servers.

import { checkSpf, type SpfResult } from '../dns/spf-check.js';
import type { DnsClient } from '../dns/resolver.js';

export type { SpfResult };

/** The SPF records among a name's TXT records (section 4.5: "v=spf1" alone or followed by a space). */
export function spfRecords(txt: readonly string[]): string[] {
  return txt.filter((t) => /^v=spf1(?: |$)/i.test(t));
}

/** check_host(ip, domain, postmaster@domain); never throws. */
export function checkHost(ip: string, domain: string, dns: DnsClient): Promise<SpfResult> {
  // RFC 7208 exactly: the doctor judges what a strict receiver would make of the record.
  return checkSpf({ ip, sender: `postmaster@${domain}`, helo: domain, mta: 'postern-doctor', strict: true }, dns);
}
