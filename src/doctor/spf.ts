// Enough of SPF's check_host() (RFC 7208 section 4) to say whether a domain's record authorises
// one of our addresses: the mechanisms ip4, ip6, a, mx, include and all, and the redirect
// modifier, with the ten-lookup limit of section 4.6.4. A record that uses macros (section 7),
// "exists" or "ptr" is not evaluated: the answer is "unsupported", and the doctor says so
// instead of guessing.

import { isIP } from 'node:net';
import type { DnsClient } from '../dns/resolver.js';
import { NetworkList } from '../util/network-list.js';
import { ask, joinedTxt } from './dns-answer.js';

export type SpfResult =
  | { readonly result: 'pass' | 'fail' | 'softfail' | 'neutral'; readonly mechanism: string }
  | { readonly result: 'none' | 'permerror' | 'temperror' | 'unsupported'; readonly reason: string };

/** RFC 7208 section 4.6.4: at most 10 terms that cause DNS lookups. */
const MAX_LOOKUPS = 10;

const QUALIFIERS = { '+': 'pass', '-': 'fail', '~': 'softfail', '?': 'neutral' } as const;

/** The SPF records among a name's TXT records (section 4.5: "v=spf1" alone or followed by a space). */
export function spfRecords(txt: readonly string[]): string[] {
  return txt.filter((t) => /^v=spf1(?: |$)/i.test(t));
}

export async function checkHost(ip: string, domain: string, dns: DnsClient): Promise<SpfResult> {
  const budget = { lookups: 0 };
  return evaluate(ip, domain, dns, budget);
}

async function evaluate(ip: string, domain: string, dns: DnsClient, budget: { lookups: number }): Promise<SpfResult> {
  const txt = await ask(() => dns.txt(domain));
  if (txt.kind === 'error') return { result: 'temperror', reason: txt.reason };
  const records = txt.kind === 'found' ? spfRecords(joinedTxt(txt.records)) : [];
  if (records.length === 0) return { result: 'none', reason: `${domain} has no SPF record` };
  if (records.length > 1) return { result: 'permerror', reason: `${domain} has ${records.length} SPF records; section 4.5 allows one` };
  const terms = (records[0] ?? '').split(' ').slice(1).filter((t) => t !== '');
  if (terms.some((t) => t.includes('%'))) return { result: 'unsupported', reason: 'the record uses macros (RFC 7208 section 7)' };
  let redirect: string | undefined;
  for (const term of terms) {
    const modifier = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(term);
    if (modifier) {
      if (modifier[1]?.toLowerCase() === 'redirect') redirect = modifier[2];
      continue;
    }
    const qualifier = term[0] as keyof typeof QUALIFIERS;
    const mechanism = qualifier in QUALIFIERS ? term.slice(1) : term;
    const result = QUALIFIERS[qualifier in QUALIFIERS ? qualifier : '+'];
    const matched = await matches(ip, domain, mechanism, dns, budget);
    if (typeof matched !== 'boolean') return matched;
    if (matched) return { result, mechanism: term };
  }
  if (redirect !== undefined) {
    if (++budget.lookups > MAX_LOOKUPS) return { result: 'permerror', reason: 'more than 10 DNS lookups (RFC 7208 section 4.6.4)' };
    const r = await evaluate(ip, redirect, dns, budget);
    // Section 6.1: a redirect to a domain without a record is a permerror.
    return r.result === 'none' ? { result: 'permerror', reason: `redirect=${redirect}: ${r.reason}` } : r;
  }
  // Section 4.7: no match and no redirect is "neutral".
  return { result: 'neutral', mechanism: '(no mechanism matched)' };
}

/** Whether `mechanism` matches `ip`; an SpfResult when evaluation must stop. */
async function matches(
  ip: string,
  domain: string,
  mechanism: string,
  dns: DnsClient,
  budget: { lookups: number },
): Promise<boolean | SpfResult> {
  const m = /^([a-z0-9]+)(?::([^/]+))?((?:\/\d+)?(?:\/\/\d+)?)$/i.exec(mechanism);
  if (!m) return { result: 'permerror', reason: `"${mechanism}" is not an SPF mechanism` };
  const name = (m[1] ?? '').toLowerCase();
  const target = m[2] ?? domain;
  const [, v4Prefix, v6Prefix] = /^(?:\/(\d+))?(?:\/\/(\d+))?$/.exec(m[3] ?? '') ?? [];
  const lookup = (): SpfResult | undefined =>
    ++budget.lookups > MAX_LOOKUPS ? { result: 'permerror', reason: 'more than 10 DNS lookups (RFC 7208 section 4.6.4)' } : undefined;
  switch (name) {
    case 'all':
      return true;
    case 'ip4':
    case 'ip6': {
      if (m[2] === undefined) return { result: 'permerror', reason: `${name} needs an address` };
      const network = `${m[2]}${m[3] ?? ''}`;
      try {
        return new NetworkList([network]).contains(ip);
      } catch {
        return { result: 'permerror', reason: `"${network}" is not a network` };
      }
    }
    case 'a':
      return lookup() ?? inAddresses(ip, [target], dns, v4Prefix, v6Prefix);
    case 'mx': {
      const over = lookup();
      if (over) return over;
      const mx = await ask(() => dns.mx(target));
      if (mx.kind === 'error') return { result: 'temperror', reason: mx.reason };
      return inAddresses(ip, mx.kind === 'found' ? mx.records.map((r) => r.exchange) : [], dns, v4Prefix, v6Prefix);
    }
    case 'include': {
      const over = lookup();
      if (over) return over;
      if (m[2] === undefined) return { result: 'permerror', reason: 'include needs a domain' };
      const r = await evaluate(ip, target, dns, budget);
      // Section 5.2: pass matches; fail, softfail and neutral do not; none is a permerror.
      if (r.result === 'pass') return true;
      if (r.result === 'fail' || r.result === 'softfail' || r.result === 'neutral') return false;
      return r.result === 'none' ? { result: 'permerror', reason: `include:${target}: ${r.reason}` } : r;
    }
    case 'exists':
    case 'ptr':
      return { result: 'unsupported', reason: `the record uses "${name}", which this check does not evaluate` };
    default:
      return { result: 'permerror', reason: `"${name}" is not an SPF mechanism` };
  }
}

async function inAddresses(
  ip: string,
  hosts: readonly string[],
  dns: DnsClient,
  v4Prefix: string | undefined,
  v6Prefix: string | undefined,
): Promise<boolean | SpfResult> {
  const v4 = isIP(ip) === 4;
  for (const host of hosts) {
    const found = await ask(() => (v4 ? dns.a(host) : dns.aaaa(host)));
    if (found.kind === 'error') return { result: 'temperror', reason: found.reason };
    if (found.kind === 'none') continue;
    const prefix = v4 ? (v4Prefix ?? '32') : (v6Prefix ?? '128');
    if (new NetworkList(found.records.map((a) => `${a}/${prefix}`)).contains(ip)) return true;
  }
  return false;
}
