// DNS about the server itself rather than one domain: the PTR of each public address must name
// the host name, and the host name must lead back to the address (forward-confirmed reverse DNS,
// RFC 8601 section 2.7.3's "iprev"). Receivers that find no such pair often refuse or score the
// mail (RFC 1912 section 2.1 asks for a PTR for every address).

import { isIP } from 'node:net';
import type { DnsClient } from '../dns/resolver.js';
import { ask, sameName } from './dns-answer.js';
import { sameAddress } from '../util/network-list.js';
import { findingsOf, type Finding } from './finding.js';
import { reverseName } from '../dns/reverse-name.js';

export async function reverseDnsFindings(host: string, addresses: readonly string[], dns: DnsClient): Promise<Finding[]> {
  const sink = findingsOf(null, 'dns');
  if (addresses.length === 0) {
    sink.unknown('dns.ptr', "[listen] names no public address, so the reverse DNS of this server cannot be checked: give --address");
    return sink.found;
  }
  for (const ip of addresses) {
    const name = reverseName(ip) ?? ip;
    const fix = `ask whoever assigns ${ip} (your hosting or network provider) for the record: ${name}. IN PTR ${host}.`;
    const ptr = await ask(() => dns.ptr(name));
    if (ptr.kind === 'error') {
      sink.unknown('dns.ptr', `cannot look up the PTR of ${ip}: ${ptr.reason}`);
      continue;
    }
    const names = ptr.kind === 'found' ? ptr.records : [];
    if (names.length === 0) {
      sink.fail('dns.ptr', `${ip} has no PTR record: many receivers refuse mail from it`, fix);
      continue;
    }
    if (!names.some((n) => sameName(n, host))) {
      sink.fail('dns.ptr', `the PTR of ${ip} is ${names.join(', ')}, not ${host}`, fix);
      continue;
    }
    const forward = await ask(() => (isIP(ip) === 4 ? dns.a(host) : dns.aaaa(host)));
    if (forward.kind === 'error') {
      sink.unknown('dns.ptr', `cannot look up ${host} to confirm the PTR of ${ip}: ${forward.reason}`);
    } else if (forward.kind === 'found' && forward.records.some((a) => sameAddress(a, ip))) {
      sink.pass('dns.ptr', `${ip} and ${host} name each other (forward-confirmed reverse DNS)`);
    } else {
      sink.fail('dns.ptr', `the PTR of ${ip} is ${host}, but ${host} does not resolve to ${ip}`, `publish: ${host}. 3600 IN ${isIP(ip) === 4 ? 'A' : 'AAAA'} ${ip}`);
    }
  }
  return sink.found;
}
