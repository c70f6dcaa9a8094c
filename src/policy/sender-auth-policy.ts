// Sender authentication as the MX session asks for it after DATA: who is checked, the check
// (src/sender-auth/), the decision (sender-auth-decision.ts), and the message as it is stored:
// any Authentication-Results field claiming our authserv-id removed, ours added, the envelope
// marked for the Junk folder when DMARC said quarantine.
//
// Not checked, and stored as they came: mail from an authenticated session (RFC 6409: the
// account is accountable for it, and its client's address says nothing about the domain), and
// mail from [limits] trusted_networks (a web application or a content filter on this host,
// which the operator vouches for; a relay there would make every SPF check fail).

import type { Config } from '../config/schema.js';
import type { DnsClient } from '../dns/resolver.js';
import type { Envelope } from '../mail/envelope.js';
import { authenticateSender } from '../sender-auth/authenticate-sender.js';
import { authenticationResultsField, replaceAuthenticationResults } from '../sender-auth/authentication-results.js';
import type { SenderAuthReport } from '../sender-auth/verdict.js';
import type { AuthenticatedMessage, MessageAuthenticator, SessionInfo } from '../smtp/session-host.js';
import { NetworkList } from '../util/network-list.js';
import { decideSenderAuth, type SenderAuthRules } from './sender-auth-decision.js';

export interface SenderAuthPolicyOptions {
  readonly dns: DnsClient;
  readonly hostname: string;
  readonly authservId: string;
  readonly rules: SenderAuthRules;
  readonly trusted: NetworkList;
  readonly timeoutMs: number;
  /** DMARC pct sampling (RFC 7489 section 6.6.4); Math.random unless a test gives its own. */
  readonly random?: () => number;
}

const UNCHECKED: AuthenticatedMessage = { kind: 'unchecked' };

export class SenderAuthPolicy implements MessageAuthenticator {
  constructor(private readonly opts: SenderAuthPolicyOptions) {}

  /** undefined when [sender_auth] enabled = false. */
  static fromConfig(config: Config, dns: DnsClient): SenderAuthPolicy | undefined {
    const s = config.sender_auth;
    if (!s.enabled) return undefined;
    return new SenderAuthPolicy({
      dns,
      hostname: config.hostname,
      authservId: s.authserv_id === '' ? config.hostname : s.authserv_id,
      rules: {
        dmarcReject: s.dmarc_reject,
        dmarcQuarantine: s.dmarc_quarantine,
        spfFail: s.spf_fail,
        arcTrustedSealers: s.arc_trusted_sealers.map((d) => d.toLowerCase()),
      },
      trusted: new NetworkList(config.limits.trusted_networks),
      timeoutMs: s.timeout * 1000,
    });
  }

  async authenticate(info: SessionInfo, envelope: Envelope, message: Buffer): Promise<AuthenticatedMessage> {
    if (info.listener !== 'mx' || info.authUser !== undefined || this.opts.trusted.contains(info.clientIp)) return UNCHECKED;
    const verdict = await authenticateSender(
      message,
      { ip: info.clientIp, helo: envelope.arrival.helo, sender: envelope.sender },
      { dns: this.opts.dns, hostname: this.opts.hostname, timeoutMs: this.opts.timeoutMs },
    );
    const decision = decideSenderAuth(verdict, this.opts.rules, this.opts.random ?? Math.random);
    const report = (removedFields: number): SenderAuthReport => ({
      verdict,
      action: decision.action,
      appliedDmarcPolicy: decision.appliedDmarcPolicy,
      reason: decision.reason,
      removedFields,
    });
    if (decision.action === 'reject') return { kind: 'refuse', reply: decision.reply, report: report(0) };
    const field = authenticationResultsField(this.opts.authservId, verdict, decision.appliedDmarcPolicy);
    const edited = replaceAuthenticationResults(message, this.opts.authservId, field);
    const stored = decision.action === 'quarantine' ? { ...envelope, quarantine: true } : envelope;
    return { kind: 'accept', envelope: stored, message: edited.message, report: report(edited.removed) };
  }
}
