// Who is greylisted, asked at RCPT TO for a recipient we would otherwise accept (so a 451 never
// hides a 550), as postgrey sits in Postfix's smtpd_recipient_restrictions after the permits:
//   - only on the MX listener, never for an authenticated session nor [limits] trusted_networks;
//   - never for a client the connect-time DNS lists vouched for (allowlists outweighing
//     blocklists: src/policy/dnsbl-score.ts), as permit_dnswl_client before postgrey;
//   - never for a sender at a [greylist] spf_allowlist domain when SPF passes for the client
//     (RFC 7208: the domain authorised this host; a forged sender of that domain still waits);
//   - everyone else: src/policy/greylist.ts decides, and a refusal is 451 4.7.1 saying how many
//     seconds are left.
// Each decision is one "greylist" log line: { client_ip, client, sender, recipient, action:
// "greylist" | "pass", reason }, plus retry_in_s when greylisted. A store failure lets the mail
// through (logged): greylisting is a heuristic, and losing it must not stop mail.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { DnsClient } from '../dns/resolver.js';
import { checkSpf, type SpfQuery, type SpfResult } from '../dns/spf-check.js';
import { normalizeDomain, splitAddress } from '../mail/address.js';
import { reply, type Reply } from '../mail/reply.js';
import type { SessionInfo } from '../smtp/session-host.js';
import type { GreylistStore } from '../store/store.js';
import { NetworkList } from '../util/network-list.js';
import { Greylist, type GreylistVerdict } from './greylist.js';
import { DAY_MS } from './rate-window.js';

/** How long one SPF evaluation may hold a RCPT reply; past it, temperror (no exemption). */
const SPF_BUDGET_MS = 10_000;

/** check_host() for the client (src/dns/spf-check.ts bound to our DNS client). */
export type SpfCheck = (q: Omit<SpfQuery, 'mta'>) => Promise<SpfResult>;

export interface GreylistGateOptions {
  readonly greylist: Greylist;
  readonly trusted: NetworkList;
  /** Sender domains (normalized) whose SPF-pass mail skips greylisting; each covers its subdomains. */
  readonly spfAllowlist: readonly string[];
  readonly spf: SpfCheck;
  readonly logger: Logger;
}

type Exemption = 'trusted network' | 'dnswl' | 'spf pass';

export class GreylistGate {
  constructor(private readonly opts: GreylistGateOptions) {}

  /**
   * undefined unless [greylist] enabled. `now` is the greylist's clock: the tests walk it past
   * the delay; the server passes none (Date.now), and no config key reaches it.
   */
  static fromConfig(config: Config, parts: { store: GreylistStore; dns: DnsClient; logger: Logger; now?: (() => number) | undefined }): GreylistGate | undefined {
    const g = config.greylist;
    if (!g.enabled) return undefined;
    const settings = {
      delayMs: g.delay * 1000,
      maxAgeMs: g.max_age * DAY_MS,
      retryWindowMs: g.retry_window * DAY_MS,
      autoWhitelistClients: g.auto_whitelist_clients,
      lookupBySubnet: g.lookup_by_subnet,
    };
    return new GreylistGate({
      greylist: new Greylist(parts.store, settings, parts.now, parts.logger),
      trusted: new NetworkList(config.limits.trusted_networks),
      // The schema admits only names that normalize.
      spfAllowlist: g.spf_allowlist.map((d) => normalizeDomain(d) ?? d),
      spf: (q) => checkSpf({ ...q, mta: config.hostname, maxElapsedMs: SPF_BUDGET_MS }, parts.dns),
      logger: parts.logger,
    });
  }

  /** undefined: go on; or the 451 to answer this RCPT with. */
  async check(info: SessionInfo, recipient: string): Promise<Reply | undefined> {
    if (info.listener !== 'mx' || info.authUser !== undefined || info.sender === undefined) return undefined;
    const sender = info.sender;
    const line = { client_ip: info.clientIp, sender, recipient };
    const exempt = await this.exemption(info, sender);
    if (exempt !== undefined) {
      // Trusted networks are our own programs: every one of their recipients would be a line.
      const level = exempt === 'trusted network' ? 'debug' : 'info';
      this.opts.logger[level]({ ...line, action: 'pass', reason: exempt }, 'greylist');
      return undefined;
    }
    let verdict: GreylistVerdict;
    try {
      verdict = await this.opts.greylist.check(info.clientIp, sender, recipient);
    } catch (err) {
      this.opts.logger.error({ ...line, err, action: 'pass', reason: 'store failure' }, 'greylist');
      return undefined;
    }
    switch (verdict.kind) {
      case 'whitelisted-client':
        this.opts.logger.info({ ...line, client: verdict.client, action: 'pass', reason: 'client whitelisted' }, 'greylist');
        return undefined;
      case 'passed': {
        const reason = verdict.retried ? 'retried after the delay' : 'triplet known';
        this.opts.logger.info({ ...line, client: verdict.triplet.client, action: 'pass', reason }, 'greylist');
        if (verdict.clientWhitelisted) {
          this.opts.logger.info({ client_ip: info.clientIp, client: verdict.triplet.client }, 'greylist: client whitelisted');
        }
        return undefined;
      }
      case 'greylisted': {
        const reason = verdict.fresh ? 'new' : 'early retry';
        const seconds = verdict.retryInSeconds;
        this.opts.logger.info({ ...line, client: verdict.triplet.client, action: 'greylist', reason, retry_in_s: seconds }, 'greylist');
        // RFC 3463 4.7.1: delivery not authorized, a temporary condition; RFC 5321 4.2.5: 451 at RCPT.
        return reply(451, '4.7.1', `<${recipient}>: Greylisted, try again in ${seconds} second${seconds === 1 ? '' : 's'}`);
      }
      default:
        return assertNever(verdict);
    }
  }

  private async exemption(info: SessionInfo, sender: string): Promise<Exemption | undefined> {
    if (this.opts.trusted.contains(info.clientIp)) return 'trusted network';
    if (info.dnsAllowlisted === true) return 'dnswl';
    // RFC 7208 2.4: with the null sender, the HELO identity is the one SPF checks.
    const helo = info.helo ?? '';
    const domain = normalizeDomain(sender === '' ? helo : (splitAddress(sender)?.domain ?? ''));
    if (domain === undefined || !this.opts.spfAllowlist.some((d) => domain === d || domain.endsWith(`.${d}`))) return undefined;
    const spf = await this.opts.spf({ ip: info.clientIp, sender, helo });
    if (spf.result === 'pass') return 'spf pass';
    this.opts.logger.debug({ client_ip: info.clientIp, sender, spf: spf.result, detail: spf.detail }, 'greylist: no SPF pass for an allowlisted domain');
    return undefined;
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}
