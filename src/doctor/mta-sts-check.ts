// The MTA-STS policy as a sender fetches it (RFC 8461 section 3.3, through the relay's own
// fetcher: our DNS, https://mta-sts.<domain>/, a certificate valid for that name) must be the
// policy Postern serves: a proxy or an old file in front of it would tell senders something else.

import { fetchPolicyText } from '../dns/mta-sts-fetch.js';
import type { DnsClient } from '../dns/resolver.js';
import type { DomainRecords } from '../publish/dns-records.js';
import { findingsOf, type Finding } from './finding.js';

const FETCH_TIMEOUT_MS = 10_000;

export async function mtaStsPolicyFindings(expected: DomainRecords, dns: DnsClient, httpsPort: number): Promise<Finding[]> {
  const sink = findingsOf(expected.domain, 'dns');
  if (expected.mtaSts === undefined) return sink.found;
  const { url, policy } = expected.mtaSts;
  try {
    const text = await fetchPolicyText(expected.domain, { dns, port: httpsPort, timeoutMs: FETCH_TIMEOUT_MS });
    if (text === policy.text) sink.pass('mta-sts.policy', `${url} serves our policy`);
    else sink.fail('mta-sts.policy', `${url} serves a policy other than ours: ${JSON.stringify(text)}`, `let mta-sts.${expected.domain} reach Postern's [listen] https, or serve: ${JSON.stringify(policy.text)}`);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    sink.fail('mta-sts.policy', `senders cannot fetch ${url}: ${why}`, `mta-sts.${expected.domain} must resolve to this server, and a [tls] certificate must cover it`);
  }
  return sink.found;
}
