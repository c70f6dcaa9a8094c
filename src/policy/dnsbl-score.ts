// Who is connecting, by reputation: the client's address looked up in DNS blocklists and
// allowlists, each answer weighted, the sum compared with a threshold, as Postfix's postscreen
// does (postscreen_dnsbl_sites, postscreen_dnsbl_threshold). A site is written
//   zone[=pattern][*weight]      e.g. "zen.spamhaus.org*3", "list.dnswl.org=127.0.[0..255].[1..3]*-5"
// The pattern filters the answers that count: each of its four octets is a number, a range
// "[a..b]" or a list "[a;b;c]". Without one, any answer counts. An allowlist has a negative weight.
// Decisions only: the lookups are done by src/server/client-screen.ts.

import { splitDnsblAnswer } from '../dns/dnsbl-answer.js';

/** One octet of an answer pattern: the values it admits. */
type OctetPattern = { readonly from: number; readonly to: number } | { readonly oneOf: readonly number[] };

export interface DnsblSite {
  /** As configured, for the log. */
  readonly text: string;
  readonly zone: string;
  readonly pattern: readonly OctetPattern[] | undefined;
  readonly weight: number;
}

/** What one list said about the client. */
export type DnsblAnswer =
  | { readonly kind: 'answered'; readonly codes: readonly string[] }
  | { readonly kind: 'not-listed' }
  /** A DNS failure, or no answer within the time budget: the list counts 0. */
  | { readonly kind: 'no-answer'; readonly reason: string };

export interface DnsblVerdict {
  readonly score: number;
  /** score >= threshold: refuse the client. */
  readonly blocked: boolean;
  /** score < 0: the allowlists vouch for the client more than the blocklists accuse it. */
  readonly allowlisted: boolean;
  /** Sites whose answer matched, with the codes that did. */
  readonly hits: readonly { readonly site: DnsblSite; readonly codes: readonly string[] }[];
  /** Sites that answered with their own error codes (127.255.255.0/24): not listings. */
  readonly errors: readonly { readonly site: DnsblSite; readonly codes: readonly string[] }[];
  /** Sites that gave no answer (in time). */
  readonly unanswered: readonly { readonly site: DnsblSite; readonly reason: string }[];
  /** The blocklists to name in the refusal: positive weights that matched, heaviest first. */
  readonly blockedBy: readonly string[];
}

/** The syntax the config schema checks too (src/config/schema.ts), so a bad site stops startup. */
const OCTET = /^(\d{1,3}|\[\d{1,3}\.\.\d{1,3}\]|\[\d{1,3}(;\d{1,3})*\])$/;

export function parseDnsblSite(text: string): DnsblSite {
  const star = text.lastIndexOf('*');
  const weight = star < 0 ? 1 : Number(text.slice(star + 1));
  const rest = star < 0 ? text : text.slice(0, star);
  const eq = rest.indexOf('=');
  const zone = (eq < 0 ? rest : rest.slice(0, eq)).toLowerCase();
  const pattern = eq < 0 ? undefined : parsePattern(rest.slice(eq + 1));
  if (!Number.isInteger(weight) || zone === '' || pattern === null) {
    throw new Error(`"${text}" is not a DNSBL site: expected zone[=pattern][*weight], e.g. "zen.spamhaus.org*3"`);
  }
  return { text, zone, pattern, weight };
}

function parsePattern(text: string): OctetPattern[] | null {
  const octets = text.split('.');
  // A range holds dots of its own ("[0..255]"): rejoin what split() cut apart.
  const joined: string[] = [];
  for (let i = 0; i < octets.length; i++) {
    const o = octets[i] ?? '';
    if (o.startsWith('[') && !o.endsWith(']') && octets[i + 1] === '') {
      joined.push(`${o}..${octets[i + 2] ?? ''}`);
      i += 2;
    } else joined.push(o);
  }
  if (joined.length !== 4 || !joined.every((o) => OCTET.test(o))) return null;
  return joined.map((o): OctetPattern => {
    if (!o.startsWith('[')) return { from: Number(o), to: Number(o) };
    const inner = o.slice(1, -1);
    if (inner.includes('..')) {
      const [from, to] = inner.split('..').map(Number);
      return { from: from ?? 0, to: to ?? -1 };
    }
    return { oneOf: inner.split(';').map(Number) };
  });
}

function matches(pattern: readonly OctetPattern[] | undefined, code: string): boolean {
  if (pattern === undefined) return true;
  const octets = code.split('.').map(Number);
  if (octets.length !== 4) return false;
  return pattern.every((p, i) => {
    const v = octets[i] ?? -1;
    return 'oneOf' in p ? p.oneOf.includes(v) : v >= p.from && v <= p.to;
  });
}

/** Sums the weights of the sites whose answers match; `answers` is in the order of `sites`. */
export function dnsblVerdict(sites: readonly DnsblSite[], answers: readonly DnsblAnswer[], threshold: number): DnsblVerdict {
  const hits: { site: DnsblSite; codes: string[] }[] = [];
  const errors: { site: DnsblSite; codes: string[] }[] = [];
  const unanswered: { site: DnsblSite; reason: string }[] = [];
  sites.forEach((site, i) => {
    const answer = answers[i] ?? { kind: 'no-answer', reason: 'not asked' };
    switch (answer.kind) {
      case 'not-listed':
        return;
      case 'no-answer':
        unanswered.push({ site, reason: answer.reason });
        return;
      case 'answered': {
        const split = splitDnsblAnswer(answer.codes);
        if (split.errors.length > 0) errors.push({ site, codes: split.errors });
        const matched = split.listings.filter((c) => matches(site.pattern, c));
        if (matched.length > 0) hits.push({ site, codes: matched });
        return;
      }
    }
  });
  // Each site counts once, however many of its answers match (as postscreen does).
  const score = hits.reduce((sum, h) => sum + h.site.weight, 0);
  const blockedBy = hits
    .filter((h) => h.site.weight > 0)
    .sort((a, b) => b.site.weight - a.site.weight)
    .map((h) => h.site.zone)
    .filter((zone, i, all) => all.indexOf(zone) === i);
  return { score, blocked: score >= threshold, allowlisted: score < 0, hits, errors, unanswered, blockedBy };
}
