// `postern probe` against our own SMTP listeners, from this machine, keeping the two things the
// doctor must vouch for: no open relay (every address form the probe tries is refused without
// AUTH) and no AUTH offered or accepted before TLS. The rest of what the probe reports (the
// certificate against an IP address, reverse DNS of loopback) says nothing true about the
// deployment from here; `postern probe HOST` from outside gives the full picture.

import type { Config } from '../config/schema.js';
import { parseListenAddress } from '../config/schema.js';
import { runProbe } from '../probe/probe.js';
import type { ProbeRole } from '../probe/report.js';
import { findingsOf, type Finding } from './finding.js';

/** Probe findings the doctor keeps: the relay forms, and AUTH before TLS. */
const VOUCHED = (check: string): boolean => check.startsWith('relay.') || check === 'auth.cleartext-offered' || check === 'auth.before-tls';

export async function selfProbeFindings(config: Config, dnsServers: readonly string[]): Promise<Finding[]> {
  const sink = findingsOf(null, 'listeners');
  const roles: [ProbeRole, readonly string[]][] = [
    ['mx', config.listen.mx],
    ['submission', config.listen.submission],
    ['submissions', config.listen.submissions],
  ];
  for (const [role, list] of roles) {
    const first = list[0];
    if (first === undefined) continue;
    const { host, port } = parseListenAddress(first);
    // An "any" address is reached through loopback from here, as the listener check does.
    const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
    const where = `listen.${role} ${first}`;
    let findings;
    try {
      const report = await runProbe({ host: target, ports: { [role]: port }, only: [role], dnsServers, replyTimeoutMs: 10_000, maxDurationMs: 60_000 });
      findings = report.sections.flatMap((s) => s.findings).filter((f) => VOUCHED(f.check));
    } catch (err) {
      sink.unknown('probe', `${where}: the probe could not run: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const failed = findings.filter((f) => f.status === 'FAIL');
    for (const f of failed) sink.fail(`probe.${f.check}`, `${where}: ${f.message}`, f.fix ?? 'see `postern probe` for the details');
    const relayForms = findings.filter((f) => f.check.startsWith('relay.')).length;
    if (failed.length === 0 && relayForms > 0) {
      sink.pass('probe', `${where}: postern probe finds no open relay (${relayForms} address forms refused) and no AUTH before TLS`);
    } else if (failed.length === 0) {
      sink.unknown('probe', `${where}: the probe made no relay test (the session ended before RCPT)`);
    }
  }
  return sink.found;
}
