// The connect-time screen of the MX listener: the client's address asked of every configured
// DNS list at once, within a time budget, and the answers weighed by src/policy/dnsbl-score.ts.
// A list that has not answered when the budget runs out counts 0: a slow list must not hold
// every client's greeting. Trusted networks are never looked up, and the submission listeners
// are never screened: authenticated users often send from dynamic addresses that the lists name.

import type { Config } from '../config/schema.js';
import { dnsblQueryName } from '../dns/dnsbl-answer.js';
import { DnsError, type DnsClient } from '../dns/resolver.js';
import { dnsblVerdict, parseDnsblSite, type DnsblAnswer, type DnsblSite, type DnsblVerdict } from '../policy/dnsbl-score.js';
import { NetworkList } from '../util/network-list.js';

export class ClientScreen {
  private constructor(
    private readonly sites: readonly DnsblSite[],
    private readonly threshold: number,
    private readonly timeoutMs: number,
    private readonly trusted: NetworkList,
    private readonly dns: DnsClient,
  ) {}

  /** undefined when [screen] names no lists. */
  static fromConfig(config: Config, dns: DnsClient): ClientScreen | undefined {
    const { screen } = config;
    if (screen.dnsbl_sites.length === 0) return undefined;
    return new ClientScreen(
      screen.dnsbl_sites.map(parseDnsblSite),
      screen.dnsbl_threshold,
      screen.dnsbl_timeout * 1000,
      new NetworkList(config.limits.trusted_networks),
      dns,
    );
  }

  /** The verdict on `ip`, or undefined when it is in a trusted network (not looked up). */
  async check(ip: string): Promise<DnsblVerdict | undefined> {
    if (this.trusted.contains(ip)) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.timeoutMs);
    });
    try {
      const answers = await Promise.all(
        this.sites.map(async (site): Promise<DnsblAnswer> => {
          const answer = await Promise.race([this.ask(ip, site), budget]);
          return answer === 'late' ? { kind: 'no-answer', reason: `no answer within ${this.timeoutMs} ms` } : answer;
        }),
      );
      return dnsblVerdict(this.sites, answers, this.threshold);
    } finally {
      clearTimeout(timer);
    }
  }

  private async ask(ip: string, site: DnsblSite): Promise<DnsblAnswer> {
    try {
      return { kind: 'answered', codes: await this.dns.a(dnsblQueryName(ip, site.zone)) };
    } catch (err) {
      // RFC 5782 section 2.1: NXDOMAIN (or no A record) is "not listed".
      if (err instanceof DnsError && err.permanent) return { kind: 'not-listed' };
      return { kind: 'no-answer', reason: err instanceof Error ? err.message : String(err) };
    }
  }
}
