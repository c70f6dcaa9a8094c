// DNS blocklists (RFC 5782): our address, reversed, under the list's zone. An A record there
// means "listed"; NXDOMAIN means not. Spamhaus answers from 127.255.255.0/24 are not listings
// but errors about the question itself (a public resolver, too many queries), so they make the
// result UNKNOWN: a resolver Spamhaus blocks would otherwise look like a clean address, or a
// listed one.

import type { DnsClient } from '../dns/resolver.js';
import { NetworkList } from '../util/network-list.js';
import { ask } from './dns-answer.js';
import { findingsOf, type Finding } from './finding.js';
import { describeDnsblError, dnsblQueryName, splitDnsblAnswer } from '../dns/dnsbl-answer.js';

/** RFC 5782 section 2.1: listings are answered from 127.0.0.0/8, 127.0.0.2 and up. */
const LISTED = new NetworkList(['127.0.0.0/24']);

/** What each answer of zen.spamhaus.org means: which of its lists holds the address. */
const ZEN_MEANINGS: Readonly<Record<string, string>> = {
  '127.0.0.2': 'SBL, a known spam source',
  '127.0.0.3': 'SBL CSS, a snowshoe spam source',
  '127.0.0.4': 'XBL, an infected or exploited host',
  '127.0.0.5': 'XBL',
  '127.0.0.6': 'XBL',
  '127.0.0.7': 'XBL',
  '127.0.0.9': 'DROP, a hijacked network',
  '127.0.0.10': 'PBL, an end-user address that should not send mail directly (listed by its ISP)',
  '127.0.0.11': 'PBL, an end-user address that should not send mail directly (listed by Spamhaus)',
};

export async function dnsblFindings(addresses: readonly string[], zones: readonly string[], dns: DnsClient): Promise<Finding[]> {
  const sink = findingsOf(null, 'dnsbl');
  if (addresses.length === 0) {
    sink.unknown('dnsbl', '[listen] names no public address to look up in blocklists: give --address');
    return sink.found;
  }
  for (const zone of zones) {
    const spamhaus = /(^|\.)spamhaus\.(org|net)$/i.test(zone);
    for (const ip of addresses) {
      const query = dnsblQueryName(ip, zone);
      const answer = await ask(() => dns.a(query));
      if (answer.kind === 'error') {
        sink.unknown('dnsbl', `${ip} in ${zone}: no answer (${answer.reason})`);
        continue;
      }
      if (answer.kind === 'none') {
        sink.pass('dnsbl', `${ip} is not listed in ${zone}`);
        continue;
      }
      const codes = answer.records;
      const { errors, listings } = splitDnsblAnswer(codes);
      if (errors.length > 0) {
        const why = errors.map(describeDnsblError).join('; ');
        sink.unknown('dnsbl', `${ip} in ${zone}: the list answered with an error, not a listing (${why})`);
        continue;
      }
      const listed = listings.filter((c) => LISTED.contains(c) && c !== '127.0.0.0' && c !== '127.0.0.1');
      if (listed.length === 0) {
        sink.unknown('dnsbl', `${ip} in ${zone}: unexpected answer ${codes.join(', ')}, neither a listing nor "not listed"`);
        continue;
      }
      const meaning = listed.map((c) => (spamhaus && ZEN_MEANINGS[c] ? `${c}, ${ZEN_MEANINGS[c]}` : c)).join('; ');
      const fix = spamhaus
        ? `look ${ip} up at https://check.spamhaus.org/ and follow its removal steps once the cause is fixed`
        : `look ${ip} up on the web site of ${zone} and ask for its removal once the cause is fixed`;
      sink.fail('dnsbl', `${ip} is listed in ${zone} (${meaning})`, fix);
    }
  }
  return sink.found;
}
