// DNS blocklist and allowlist answers (RFC 5782): the client's address, reversed, under the
// list's zone; an A record there means "listed", NXDOMAIN means not. Answers from
// 127.255.255.0/24 are not listings but the list's errors about the question itself (Spamhaus:
// a public resolver, too many queries), so they must never count as one: a resolver a list
// blocks would otherwise make every client look listed. Shared by the server's connection
// screen and `postern doctor`.

import { NetworkList } from '../util/network-list.js';
import { reversedLabels } from './reverse-name.js';

const LIST_ERRORS = new NetworkList(['127.255.255.0/24']);

/** The error codes Spamhaus documents for its public mirrors. */
const ERROR_MEANINGS: Readonly<Record<string, string>> = {
  '127.255.255.252': 'the blocklist name is mistyped',
  '127.255.255.254': 'the query came through a public or open resolver, which Spamhaus does not answer: use your own resolver',
  '127.255.255.255': 'too many queries from this resolver: use your own resolver, or a Data Query Service key',
};

/** The name to ask for `ip` in `zone`: "2.2.0.192.zen.spamhaus.org" (RFC 5782 sections 2.1, 2.4). */
export function dnsblQueryName(ip: string, zone: string): string {
  return `${reversedLabels(ip) ?? ip}.${zone}`;
}

/** An A answer split into the list's error codes and the rest (candidate listings). */
export function splitDnsblAnswer(codes: readonly string[]): { readonly errors: string[]; readonly listings: string[] } {
  return {
    errors: codes.filter((c) => LIST_ERRORS.contains(c)),
    listings: codes.filter((c) => !LIST_ERRORS.contains(c)),
  };
}

/** "127.255.255.254: the query came through a public …": what an error code says, for a log or report. */
export function describeDnsblError(code: string): string {
  return `${code}: ${ERROR_MEANINGS[code] ?? 'an error code, not a listing'}`;
}
