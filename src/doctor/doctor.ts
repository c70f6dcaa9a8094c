// `postern doctor`: is this server set up right, as the rest of the world sees it? For each
// local domain it compares the published DNS with what `postern dns` says it should be, fetches
// the MTA-STS policy as a sender would and checks that postmaster@ reaches someone; for the
// server it checks reverse DNS, certificates, listeners, blocklists and free space. Every check
// is its own module and returns Findings; this file decides which run and in what order.
// Our SMTP listeners are also looked at as a stranger would, by `postern probe` (self-probe.ts):
// no open relay, no AUTH before TLS.

import { parseListenAddress, type Config } from '../config/schema.js';
import { readDkimKey } from '../dkim/dkim-key.js';
import type { DnsClient } from '../dns/resolver.js';
import { domainRecords, publicAddresses, type DomainRecords } from '../publish/dns-records.js';
import { clientHost } from '../publish/offered-services.js';
import type { DirectoryStore } from '../store/store.js';
import { domainDnsFindings } from './dns-checks.js';
import { dnsblFindings } from './dnsbl.js';
import { doctorReport, type DoctorReport, type Finding } from './finding.js';
import { reverseDnsFindings } from './host-dns-checks.js';
import { listenerFindings } from './listener-checks.js';
import { diskFindings, postmasterFindings } from './local-checks.js';
import { mtaStsPolicyFindings } from './mta-sts-check.js';
import { selfProbeFindings } from './self-probe.js';
import { tlsFindings, type CoveredName } from './tls-checks.js';

export interface DoctorOptions {
  readonly config: Config;
  readonly store: DirectoryStore;
  readonly dns: DnsClient;
  /** The resolvers `dns` asks, for the probe of our own listeners; empty: the system's. */
  readonly dnsServers: readonly string[];
  /** Local domains to check, normalized. */
  readonly domains: readonly string[];
  /** The server's public addresses; empty: those [listen] names. */
  readonly addresses: readonly string[];
  /** DNS blocklist zones; [doctor] dnsbl_zones unless given. */
  readonly dnsblZones: readonly string[];
}

export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const { config, dns } = opts;
  const addresses = opts.addresses.length > 0 ? opts.addresses : publicAddresses(config);
  const host = config.hostname.toLowerCase();
  const expected = opts.domains.map((domain) => domainRecords(config, domain, readDkimKey(config, domain), addresses));

  const findings: Finding[] = [];
  findings.push(...(await reverseDnsFindings(host, addresses, dns)));
  findings.push(...(await tlsFindings(config, coveredNames(config, expected))));
  const listeners = await listenerFindings(config);
  findings.push(...listeners);
  // Only listeners that answer are probed: one that does not is a FAIL already.
  if (!listeners.some((f) => f.status === 'FAIL')) findings.push(...(await selfProbeFindings(config, opts.dnsServers)));
  findings.push(...(await dnsblFindings(addresses, opts.dnsblZones, dns)));
  findings.push(...(await diskFindings(config)));
  if (opts.domains.length === 0) {
    findings.push({ domain: null, section: 'mail', check: 'mail.domains', status: 'INFO', message: 'there are no local domains to check', fix: 'postern domain add example.com' });
  }
  const httpsPort = firstPort(config.listen.https);
  for (const records of expected) {
    findings.push(...(await domainDnsFindings({ expected: records, addresses, dns })));
    if (httpsPort !== undefined) findings.push(...(await mtaStsPolicyFindings(records, dns, httpsPort)));
    findings.push(...(await postmasterFindings(config, opts.store, records.domain)));
  }
  return doctorReport(host, findings);
}

/** The names clients and senders reach us by over TLS: the host names, and what the web listener serves per domain. */
function coveredNames(config: Config, expected: readonly DomainRecords[]): CoveredName[] {
  const enforced = config.mta_sts.mode !== 'none' && config.listen.https.length > 0;
  const names: CoveredName[] = [
    {
      name: config.hostname.toLowerCase(),
      why: enforced ? 'senders that apply our MTA-STS policy refuse to deliver' : 'senders that verify certificates fall back to plain text or refuse',
      severity: enforced ? 'fail' : 'warn',
    },
  ];
  const client = clientHost(config);
  if (client !== names[0]?.name) names.push({ name: client, why: 'mail programs refuse to log in', severity: 'fail' });
  if (config.listen.https.length === 0) return names;
  for (const { domain, mtaSts } of expected) {
    if (mtaSts !== undefined) names.push({ name: `mta-sts.${domain}`, why: 'senders cannot fetch our MTA-STS policy', severity: 'fail' });
    names.push({ name: `autoconfig.${domain}`, why: 'Thunderbird cannot fetch its settings over HTTPS', severity: 'warn' });
    names.push({ name: `autodiscover.${domain}`, why: 'Outlook cannot fetch its settings', severity: 'warn' });
  }
  return names;
}

function firstPort(listen: readonly string[]): number | undefined {
  const first = listen[0];
  return first === undefined ? undefined : parseListenAddress(first).port;
}
