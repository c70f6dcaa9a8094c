// What to do with a message once its sender has been authenticated (src/sender-auth/): deliver
// it, file it as junk, or refuse it after DATA. Pure: the verdict, the rules from [sender_auth],
// and a random source for DMARC's pct sampling in; the action out.
//
// - DMARC (RFC 7489 section 6.6.4, 6.7): only a "fail" is acted on, with the domain's policy
//   ("p", or "sp" for a subdomain) sampled by pct: a message outside the sample gets the next
//   lower policy (reject -> quarantine -> none). temperror and permerror are never acted on: a
//   lookup that failed says nothing about the sender.
// - SPF (RFC 7208 section 8.4): a "fail" alone is recorded unless spf_fail = "reject"; DMARC is
//   how a domain asks receivers to act on it.
// - ARC (RFC 8617 section 7.2): a mailing list that changes a message breaks its DKIM signature
//   and sends it from its own address, so a p=reject sender's list mail fails DMARC at every
//   subscriber. A forwarder that sealed the message with ARC says what it saw on arrival; if its
//   chain validates, it is one the operator trusts (arc_trusted_sealers), and it saw dmarc=pass,
//   the DMARC failure is overridden (RFC 7489 section 7.2.1.1's local_policy override): the
//   message is delivered, and the header and log say so.

import { reply, type Reply } from '../mail/reply.js';
import type { DmarcPolicy, SenderAuthAction, SenderAuthVerdict } from '../sender-auth/verdict.js';

export interface SenderAuthRules {
  /** A DMARC fail under p=reject: refuse it (550 5.7.1), file it as junk, or only record it. */
  readonly dmarcReject: 'reject' | 'quarantine' | 'record';
  /** A DMARC fail under p=quarantine: file it as junk, or only record it. */
  readonly dmarcQuarantine: 'quarantine' | 'record';
  /** An SPF fail ("-all" matched): only record it, or refuse the message (550 5.7.23). */
  readonly spfFail: 'record' | 'reject';
  /** Forwarders (lower-case domains) whose ARC seal, if valid and showing dmarc=pass, overrides a DMARC fail. */
  readonly arcTrustedSealers: readonly string[];
}

export type SenderAuthDecision =
  | {
      readonly action: Exclude<SenderAuthAction, 'reject'>;
      readonly appliedDmarcPolicy: DmarcPolicy | undefined;
      readonly reason: string | undefined;
    }
  | {
      readonly action: 'reject';
      readonly appliedDmarcPolicy: DmarcPolicy | undefined;
      readonly reason: string;
      readonly reply: Reply;
    };

/** `random` gives [0, 1), like Math.random: tests pass their own. */
export function decideSenderAuth(verdict: SenderAuthVerdict, rules: SenderAuthRules, random: () => number): SenderAuthDecision {
  const sampled = appliedDmarcPolicy(verdict, random);
  const sampledOut = sampled !== undefined && sampled !== verdict.dmarc.policy;
  const trustedSealer = sampled === 'reject' || sampled === 'quarantine' ? arcOverride(verdict, rules) : undefined;
  const applied = trustedSealer === undefined ? sampled : 'none';
  const dmarcReason =
    `dmarc ${verdict.dmarc.domain ?? ''} p=${verdict.dmarc.policy ?? 'none'}${sampledOut ? ` (pct=${verdict.dmarc.pct}: applied ${sampled})` : ''}` +
    (trustedSealer === undefined ? '' : `, overridden: ARC sealed by ${trustedSealer} (trusted), which saw dmarc=pass`);
  if (trustedSealer !== undefined && !(verdict.spf.result === 'fail' && rules.spfFail === 'reject')) {
    return { action: 'deliver', appliedDmarcPolicy: applied, reason: dmarcReason };
  }

  if (applied === 'reject' && rules.dmarcReject === 'reject') {
    return { action: 'reject', appliedDmarcPolicy: applied, reason: dmarcReason, reply: dmarcRefusal(verdict) };
  }
  if (verdict.spf.result === 'fail' && rules.spfFail === 'reject') {
    return { action: 'reject', appliedDmarcPolicy: applied, reason: 'spf fail', reply: spfRefusal(verdict) };
  }
  if ((applied === 'reject' && rules.dmarcReject === 'quarantine') || (applied === 'quarantine' && rules.dmarcQuarantine === 'quarantine')) {
    return { action: 'quarantine', appliedDmarcPolicy: applied, reason: dmarcReason };
  }
  // Recorded, not acted on: the header and the log line still say what failed.
  const recorded = applied === 'reject' || applied === 'quarantine' ? `${dmarcReason}, recorded only` : undefined;
  return { action: 'deliver', appliedDmarcPolicy: applied, reason: recorded };
}

/** The trusted forwarder whose valid ARC seal vouches for a DMARC pass on arrival; undefined if none. */
function arcOverride(verdict: SenderAuthVerdict, rules: SenderAuthRules): string | undefined {
  const { result, sealer, sealerDmarc } = verdict.arc;
  if (result !== 'pass' || sealer === undefined || sealerDmarc !== 'pass') return undefined;
  return rules.arcTrustedSealers.includes(sealer) ? sealer : undefined;
}

/** The policy that applies to a failing message after pct sampling; undefined unless DMARC failed. */
function appliedDmarcPolicy(verdict: SenderAuthVerdict, random: () => number): DmarcPolicy | undefined {
  const { result, policy, pct } = verdict.dmarc;
  if (result !== 'fail' || policy === undefined) return undefined;
  if (pct >= 100 || random() * 100 < pct) return policy;
  return policy === 'reject' ? 'quarantine' : 'none';
}

function dmarcRefusal(verdict: SenderAuthVerdict): Reply {
  const domain = printable(verdict.dmarc.domain ?? '');
  return reply(550, '5.7.1', `Message rejected: ${domain} publishes DMARC p=reject and this message fails it (${failedChecks(verdict)})`);
}

/** RFC 7372 section 3.2: X.7.23, SPF validation failed. */
function spfRefusal(verdict: SenderAuthVerdict): Reply {
  const domain = printable(verdict.spf.domain ?? '');
  return reply(550, '5.7.23', `Message rejected: SPF of ${domain} does not allow this client (spf=fail)`);
}

/** "spf=fail smtp.mailfrom=a.test, dkim=fail header.d=b.test": what did not pass, and for whom. */
function failedChecks(verdict: SenderAuthVerdict): string {
  const spf = `spf=${verdict.spf.result}${verdict.spf.domain ? ` smtp.mailfrom=${printable(verdict.spf.domain)}` : ''}`;
  const dkim = verdict.dkim.map((d) => `dkim=${d.result}${d.domain ? ` header.d=${printable(d.domain)}` : ''}`);
  return [spf, ...dkim].join(', ').slice(0, 300);
}

/** Domains come from the message: nothing but printable ASCII goes into a reply line. */
function printable(text: string): string {
  return text.replace(/[^\x21-\x7e]/g, '?').slice(0, 255);
}
