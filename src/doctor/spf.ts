// Whether a domain's SPF record authorises one of our addresses: RFC 7208 check_host(), as
// mailauth evaluates it for inbound mail (every mechanism, macros, include/redirect, the ten-
// lookup and two-void-lookup limits), asked through our DNS client so that the doctor's
// --dns servers, and the test DNS server, answer it.

import { spf } from 'mailauth';
import { mailauthResolver } from '../dns/mailauth-resolver.js';
import type { DnsClient } from '../dns/resolver.js';

export interface SpfResult {
  readonly result: 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'temperror';
  /** mailauth's explanation, e.g. which mechanism matched or which limit was hit. */
  readonly detail: string;
}

/** The SPF records among a name's TXT records (section 4.5: "v=spf1" alone or followed by a space). */
export function spfRecords(txt: readonly string[]): string[] {
  return txt.filter((t) => /^v=spf1(?: |$)/i.test(t));
}

/** check_host(ip, domain, postmaster@domain); never throws. */
export async function checkHost(ip: string, domain: string, dns: DnsClient): Promise<SpfResult> {
  try {
    const verdict = await spf({
      sender: `postmaster@${domain}`,
      ip,
      helo: domain,
      mta: 'postern-doctor',
      resolver: mailauthResolver(dns),
      // RFC 7208 exactly: the doctor judges what a strict receiver would make of the record.
      strict: true,
    });
    const result = verdict.status.result;
    const known = ['pass', 'fail', 'softfail', 'neutral', 'none', 'permerror', 'temperror'] as const;
    const mapped = result === 'temperr' ? 'temperror' : known.find((k) => k === result);
    // mailauth starts its comment with the mta name, which says nothing here.
    const detail = (verdict.status.comment ?? result).replace(/^postern-doctor: /, '');
    return { result: mapped ?? 'permerror', detail };
  } catch (err) {
    return { result: 'temperror', detail: err instanceof Error ? err.message : String(err) };
  }
}
