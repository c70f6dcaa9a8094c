// The published DNS of one local domain against what `postern dns` says it should be
// (src/publish/dns-records.ts): every FAIL or WARN carries the expected record, as the zone-file
// line `postern dns DOMAIN` prints, for its fix.

import type { DnsClient } from '../dns/resolver.js';
import { parseStsRecord } from '../dns/mta-sts-policy.js';
import type { DomainRecords, PublishedRecord } from '../publish/dns-records.js';
import { zoneLine } from '../publish/zone-file.js';
import { ask, joinedTxt, sameName } from './dns-answer.js';
import { findingsOf, type Finding, type FindingSink } from './finding.js';
import { checkHost, spfRecords } from './spf.js';
import { sameAddress } from '../util/network-list.js';

export interface DomainDnsInput {
  readonly expected: DomainRecords;
  /** The server's public addresses ([listen], --address); empty when none is known. */
  readonly addresses: readonly string[];
  readonly dns: DnsClient;
}

export async function domainDnsFindings({ expected, addresses, dns }: DomainDnsInput): Promise<Finding[]> {
  const { domain } = expected;
  const sink = findingsOf(domain, 'dns');
  const ofType = (type: PublishedRecord['type'], name?: string): PublishedRecord[] =>
    expected.records.filter((r) => r.type === type && (name === undefined || r.name === name));
  const fixFor = (records: readonly PublishedRecord[]): string => `publish: ${records.map((r) => zoneLine(r)).join('\n')}`;

  await checkMx(sink, domain, ofType('MX'), dns, fixFor);
  for (const name of new Set(ofType('A').concat(ofType('AAAA')).map((r) => r.name))) {
    await checkAddresses(sink, name, expected.records.filter((r) => r.name === name && (r.type === 'A' || r.type === 'AAAA')), dns, fixFor);
  }
  await checkSpf(sink, domain, ofType('TXT', domain), addresses, dns, fixFor);
  await checkDkim(sink, expected, dns, fixFor);
  await checkTxt(sink, 'dns.dmarc', ofType('TXT', `_dmarc.${domain}`), /^v=DMARC1(?:;|$)/i, 'fail', dns, fixFor, (t) => `DMARC: ${t}`);
  await checkTxt(sink, 'dns.tls-rpt', ofType('TXT', `_smtp._tls.${domain}`), /^v=TLSRPTv1(?:;|$)/i, 'warn', dns, fixFor, (t) => `TLS-RPT: ${t}`);
  await checkMtaStsRecord(sink, expected, dns, fixFor);
  for (const record of ofType('SRV')) await checkSrv(sink, record, dns, fixFor);
  for (const record of ofType('CNAME')) await checkCname(sink, record, dns, fixFor);
  // What `postern dns` could not turn into a record (a port senders do not use, a name that is
  // not fully qualified) is worth knowing, though no lookup can check it.
  for (const note of expected.notes) sink.info('dns.note', note);
  return sink.found;
}

type FixFor = (records: readonly PublishedRecord[]) => string;

async function checkMx(sink: FindingSink, domain: string, expected: readonly PublishedRecord[], dns: DnsClient, fixFor: FixFor): Promise<void> {
  const want = expected.flatMap((r) => (r.type === 'MX' ? [r.exchange] : []));
  const mx = await ask(() => dns.mx(domain));
  if (mx.kind === 'error') return sink.unknown('dns.mx', `cannot look up the MX of ${domain}: ${mx.reason}`);
  const got = mx.kind === 'found' ? mx.records.map((r) => r.exchange) : [];
  if (got.length === 0) return sink.fail('dns.mx', `${domain} has no MX record: senders try its A record, or give up`, fixFor(expected));
  if (!want.some((w) => got.some((g) => sameName(g, w)))) {
    return sink.fail('dns.mx', `the MX of ${domain} is ${got.join(', ')}, not this server (${want.join(', ')})`, fixFor(expected));
  }
  sink.pass('dns.mx', `the MX of ${domain} is ${got.join(', ')}`);
}

async function checkAddresses(sink: FindingSink, name: string, expected: readonly PublishedRecord[], dns: DnsClient, fixFor: FixFor): Promise<void> {
  const [a, aaaa] = await Promise.all([ask(() => dns.a(name)), ask(() => dns.aaaa(name))]);
  const failed = [a, aaaa].find((r) => r.kind === 'error');
  if (failed?.kind === 'error') return sink.unknown('dns.address', `cannot look up the addresses of ${name}: ${failed.reason}`);
  const got = [...(a.kind === 'found' ? a.records : []), ...(aaaa.kind === 'found' ? aaaa.records : [])];
  const missing = expected.filter((r) => (r.type === 'A' || r.type === 'AAAA') && !got.some((g) => sameAddress(g, r.address)));
  if (missing.length > 0) {
    const has = got.length === 0 ? 'no addresses' : got.join(', ');
    return sink.fail('dns.address', `${name} has ${has}; this server is also at ${missing.map(addressOf).join(', ')}`, fixFor(missing));
  }
  const ours = expected.map(addressOf);
  const foreign = got.filter((g) => !ours.some((o) => sameAddress(o, g)));
  if (foreign.length > 0) {
    return sink.warn('dns.address', `${name} also resolves to ${foreign.join(', ')}, which this server does not listen on`, `remove the A/AAAA records of ${name} for ${foreign.join(', ')}`);
  }
  sink.pass('dns.address', `${name} resolves to ${got.join(', ')}`);
}

async function checkSpf(
  sink: FindingSink,
  domain: string,
  expected: readonly PublishedRecord[],
  addresses: readonly string[],
  dns: DnsClient,
  fixFor: FixFor,
): Promise<void> {
  const txt = await ask(() => dns.txt(domain));
  if (txt.kind === 'error') return sink.unknown('dns.spf', `cannot look up the TXT records of ${domain}: ${txt.reason}`);
  const records = spfRecords(txt.kind === 'found' ? joinedTxt(txt.records) : []);
  if (records.length === 0) return sink.fail('dns.spf', `${domain} has no SPF record: receivers cannot tell our mail from forgeries`, fixFor(expected));
  if (records.length > 1) {
    return sink.fail('dns.spf', `${domain} has ${records.length} SPF records, which is an error (RFC 7208 section 4.5): ${records.join(' | ')}`, `keep only ${fixFor(expected)}`);
  }
  if (addresses.length === 0) {
    return sink.unknown('dns.spf', `SPF of ${domain} is "${records[0] ?? ''}", but which addresses are ours is not known: give --address`);
  }
  const refused: string[] = [];
  for (const ip of addresses) {
    const r = await checkHost(ip, domain, dns);
    if (r.result === 'temperror') return sink.unknown('dns.spf', `SPF of ${domain} for ${ip}: temperror, ${r.detail}`);
    if (r.result === 'permerror' || r.result === 'none') {
      return sink.fail('dns.spf', `SPF of ${domain} for ${ip}: ${r.result}, ${r.detail}`, fixFor(expected));
    }
    if (r.result !== 'pass') refused.push(`${ip} (${r.result}: ${r.detail})`);
  }
  if (refused.length > 0) {
    return sink.fail('dns.spf', `SPF of ${domain} ("${records[0] ?? ''}") does not authorise ${refused.join(', ')}`, fixFor(expected));
  }
  sink.pass('dns.spf', `SPF of ${domain} authorises ${addresses.join(', ')}`);
}

async function checkDkim(sink: FindingSink, expected: DomainRecords, dns: DnsClient, fixFor: FixFor): Promise<void> {
  const record = expected.records.find((r) => r.type === 'TXT' && r.name.includes('._domainkey.'));
  if (record?.type !== 'TXT') {
    const domain = expected.domain;
    return sink.warn('dns.dkim', `${domain} has no DKIM key, so its mail goes out unsigned`, `postern dkim generate ${domain}; then publish the record \`postern dns ${domain}\` prints`);
  }
  const want = dkimPublicKey(record.strings.join(''));
  const txt = await ask(() => dns.txt(record.name));
  if (txt.kind === 'error') return sink.unknown('dns.dkim', `cannot look up ${record.name}: ${txt.reason}`);
  const published = txt.kind === 'found' ? joinedTxt(txt.records).filter((t) => dkimPublicKey(t) !== undefined) : [];
  if (published.length === 0) return sink.fail('dns.dkim', `${record.name} has no DKIM record: receivers cannot verify our signatures`, fixFor([record]));
  if (!published.some((t) => dkimPublicKey(t) === want)) {
    return sink.fail('dns.dkim', `${record.name} publishes a different key than the one that signs our mail`, fixFor([record]));
  }
  sink.pass('dns.dkim', `${record.name} publishes the key that signs our mail`);
}

/** The p= tag of a DKIM key record (RFC 6376 section 3.6.1), whitespace removed; undefined when it has none. */
function dkimPublicKey(text: string): string | undefined {
  for (const tag of text.split(';')) {
    const m = /^\s*p\s*=(.*)$/s.exec(tag);
    if (m) return (m[1] ?? '').replace(/\s+/g, '');
  }
  return undefined;
}

/** A TXT record that must exist (DMARC, TLS-RPT): PASS with what it says, else `severity` with the expected record. */
async function checkTxt(
  sink: FindingSink,
  check: string,
  expected: readonly PublishedRecord[],
  pattern: RegExp,
  severity: 'fail' | 'warn',
  dns: DnsClient,
  fixFor: FixFor,
  says: (text: string) => string,
): Promise<void> {
  const name = expected[0]?.name;
  if (name === undefined) return;
  const txt = await ask(() => dns.txt(name));
  if (txt.kind === 'error') return sink.unknown(check, `cannot look up ${name}: ${txt.reason}`);
  const found = (txt.kind === 'found' ? joinedTxt(txt.records) : []).filter((t) => pattern.test(t));
  if (found.length === 0) return sink[severity](check, `${name} has no record`, fixFor(expected));
  if (found.length > 1) return sink.fail(check, `${name} has ${found.length} records, so receivers ignore them all`, `keep only ${fixFor(expected)}`);
  sink.pass(check, says(found[0] ?? ''));
}

async function checkMtaStsRecord(sink: FindingSink, expected: DomainRecords, dns: DnsClient, fixFor: FixFor): Promise<void> {
  if (expected.mtaSts === undefined) return;
  const record = expected.records.find((r) => r.name === `_mta-sts.${expected.domain}` && r.type === 'TXT');
  if (record === undefined) return;
  const txt = await ask(() => dns.txt(record.name));
  if (txt.kind === 'error') return sink.unknown('dns.mta-sts', `cannot look up ${record.name}: ${txt.reason}`);
  const id = txt.kind === 'found' ? parseStsRecord(txt.records) : undefined;
  if (id === undefined) return sink.warn('dns.mta-sts', `${record.name} has no valid MTA-STS record, so senders do not look for our policy`, fixFor([record]));
  if (id !== expected.mtaSts.policy.id) {
    // RFC 8461 section 3.3: senders refetch only when the id changes, so a stale id keeps them on an old policy.
    return sink.fail('dns.mta-sts', `${record.name} says id=${id}, but the policy served has id=${expected.mtaSts.policy.id}`, fixFor([record]));
  }
  sink.pass('dns.mta-sts', `${record.name} announces the policy served (id=${id})`);
}

async function checkSrv(sink: FindingSink, record: PublishedRecord, dns: DnsClient, fixFor: FixFor): Promise<void> {
  if (record.type !== 'SRV') return;
  const srv = await ask(() => dns.srv(record.name));
  if (srv.kind === 'error') return sink.unknown('dns.srv', `cannot look up ${record.name}: ${srv.reason}`);
  const got = srv.kind === 'found' ? srv.records : [];
  // c-ares gives the root target "." as "".
  const target = (t: string): string => (t === '' ? '.' : t);
  if (got.length === 0) return sink.warn('dns.srv', `${record.name} is not published: mail programs guess`, fixFor([record]));
  if (!got.some((r) => r.port === record.port && sameName(target(r.name), record.target))) {
    const shown = got.map((r) => `${r.port} ${target(r.name)}`).join(', ');
    return sink.fail('dns.srv', `${record.name} points at ${shown}, not ${record.port} ${record.target}`, fixFor([record]));
  }
  if (record.target === '.') sink.pass('dns.srv', `${record.name} says the service is not offered (target ".")`);
  else sink.pass('dns.srv', `${record.name} points at ${record.target} port ${record.port}`);
}

/** A name that must lead to one of ours: the CNAME itself, or addresses equal to its target's. */
async function checkCname(sink: FindingSink, record: PublishedRecord, dns: DnsClient, fixFor: FixFor): Promise<void> {
  if (record.type !== 'CNAME') return;
  const cname = await ask(() => dns.cname(record.name));
  if (cname.kind === 'found' && cname.records.some((t) => sameName(t, record.target))) {
    return sink.pass('dns.cname', `${record.name} is an alias of ${record.target}`);
  }
  const [mine, theirs] = await Promise.all([addressesOf(record.name, dns), addressesOf(record.target, dns)]);
  if (mine.length === 0) return sink.warn('dns.cname', `${record.name} does not resolve`, fixFor([record]));
  if (theirs.length > 0 && mine.every((a) => theirs.some((t) => sameAddress(a, t)))) {
    return sink.pass('dns.cname', `${record.name} resolves to the addresses of ${record.target}`);
  }
  sink.fail('dns.cname', `${record.name} resolves to ${mine.join(', ')}, not to ${record.target}`, fixFor([record]));
}

async function addressesOf(name: string, dns: DnsClient): Promise<string[]> {
  const [a, aaaa] = await Promise.all([ask(() => dns.a(name)), ask(() => dns.aaaa(name))]);
  return [...(a.kind === 'found' ? a.records : []), ...(aaaa.kind === 'found' ? aaaa.records : [])];
}

function addressOf(record: PublishedRecord): string {
  return record.type === 'A' || record.type === 'AAAA' ? record.address : '';
}
