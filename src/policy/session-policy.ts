// Who may send to whom. The session asks; this answers, at RCPT time, so that a refused recipient
// never costs us a bounce (RFC 5321 3.3, 7.8). The one rule that must never break: mail for a domain
// that is not ours is refused unless the client has authenticated — we are not an open relay
// (RFC 5321 3.6.1, 7.1; RFC 2505).

import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import type { Envelope, MailParams, RcptParams } from '../mail/envelope.js';
import { reply, type Reply } from '../mail/reply.js';
import type { RecipientDecision, SessionInfo, SessionPolicy } from '../smtp/session-host.js';
import type { DirectoryStore } from '../store/store.js';
import { normalizeDomain, splitAddress } from '../mail/address.js';
import { hasRoutingTrick, parseRecipient } from '../directory/recipient-address.js';
import { RecipientResolver, type Resolution } from '../directory/recipient-resolver.js';
import type { SubmissionPolicy } from './submission-policy.js';
import type { ClientRateLimits } from './client-rate.js';
import { isSrsLocalPart, type SrsCodec } from '../srs/srs.js';
import type { GreylistGate } from './greylist-gate.js';

export interface PolicyOptions {
  /** Plus-addressing separator: alice+tag@d reaches alice@d ("" turns it off). */
  recipientDelimiter: string;
  /** Where postmaster mail goes: an address; "" = postmaster@<hostname> stored in a local mailbox. */
  postmaster: string;
  hostname: string;
  /** For relay attempts, alias loops and alias targets that lead nowhere. */
  logger?: Logger;
  /**
   * What an authenticated client may send (sender identity, per-account limits). Without it,
   * authenticated sessions get only the checks every session gets: the server must pass it.
   */
  submission?: SubmissionPolicy;
  /** Checks SRS0 addresses at our domains, where bounces to forwarded mail come back. */
  srs?: SrsCodec;
  /** [greylist] enabled: asked about each recipient we would accept from an unauthenticated MX client. */
  greylist?: GreylistGate;
  /** Messages per client IP per minute, for sessions without AUTH (client-rate.ts). */
  clientRates?: ClientRateLimits;
}

export function createSessionPolicy(store: DirectoryStore, opts: PolicyOptions): SessionPolicy {
  return new MxPolicy(store, opts);
}

class MxPolicy implements SessionPolicy {
  private readonly resolver: RecipientResolver;
  private readonly log: Logger | undefined;
  private readonly submission: SubmissionPolicy | undefined;
  private readonly srs: SrsCodec | undefined;
  private readonly greylist: GreylistGate | undefined;
  private readonly clientRates: ClientRateLimits | undefined;

  constructor(
    private readonly store: DirectoryStore,
    opts: PolicyOptions,
  ) {
    this.resolver = new RecipientResolver(store, opts);
    this.log = opts.logger;
    this.submission = opts.submission;
    this.srs = opts.srs;
    this.greylist = opts.greylist;
    this.clientRates = opts.clientRates;
  }

  async checkSender(info: SessionInfo, sender: string, _params: MailParams): Promise<Reply | undefined> {
    // The null reverse-path is how bounces arrive and must be accepted (RFC 5321 4.5.5).
    if (sender !== '' && !isValidSender(sender)) return reply(501, '5.1.7', `<${sender}>: Bad sender address syntax`);
    // A client without AUTH (the MX's) is held to its address's message rate; an account has its own.
    if (info.authUser === undefined) return this.clientRates?.checkMessage(info.clientIp, info.listener);
    if (!this.submission) return undefined;
    // Submission (RFC 6409 6.1): the account may use only its own addresses, within its quota.
    return (
      (await this.submission.senderIdentity.checkEnvelopeSender(info.authUser, sender)) ??
      (await this.submission.rateLimiter.checkMessage(info.authUser))
    );
  }

  async checkRecipient(info: SessionInfo, recipient: string, _params: RcptParams, accepted = 0): Promise<RecipientDecision> {
    const decision = await this.decideRecipient(info, recipient);
    if (!decision.accept) return decision;
    if (info.authUser === undefined) {
      // Last, so that a 451 never hides a refusal the client would get on its retry anyway.
      const greylisted = await this.greylist?.check(info, decision.address);
      return greylisted ? { accept: false, reply: greylisted } : decision;
    }
    if (!this.submission) return decision;
    // Only recipients we would accept count against the account's daily quota.
    const overQuota = await this.submission.rateLimiter.checkRecipient(info.authUser, accepted);
    return overQuota ? { accept: false, reply: overQuota } : decision;
  }

  async checkMessage(info: SessionInfo, _envelope: Envelope, message: Buffer): Promise<Reply | undefined> {
    if (info.authUser === undefined || !this.submission) return undefined;
    // What the recipient sees is the header From, so it is held to the same rule as MAIL FROM.
    return this.submission.senderIdentity.checkHeaderFrom(info.authUser, message);
  }

  async messageAccepted(info: SessionInfo, envelope: Envelope): Promise<void> {
    if (info.authUser === undefined || !this.submission) return;
    try {
      await this.submission.rateLimiter.record(info.authUser, envelope.recipients.length);
    } catch (err) {
      // The message is already queued; a lost count must not turn into an error for the client.
      this.log?.warn({ err, account: info.authUser }, 'cannot count a submitted message');
    }
  }

  private async decideRecipient(info: SessionInfo, recipient: string): Promise<RecipientDecision> {
    const rcpt = parseRecipient(recipient);
    switch (rcpt.kind) {
      case 'bare-postmaster':
        return this.decide(rcpt.address, await this.resolver.resolvePostmaster());
      case 'literal':
        // We have no mailboxes at address literals; accepting them would relay to any IP.
        return this.relayDenied(info, rcpt.address, 'address literal');
      case 'invalid':
        return refuse(501, '5.1.3', `<${rcpt.address}>: Bad recipient address syntax`);
      case 'domain':
        break;
      default:
        return assertNever(rcpt);
    }

    if (!(await this.store.isLocalDomain(rcpt.domain))) {
      // Only an authenticated session (authUser set by AUTH) may send mail to other domains.
      if (info.authUser !== undefined) return { accept: true, address: rcpt.address, mailboxes: [] };
      return this.relayDenied(info, rcpt.address, 'not a local domain');
    }
    if (hasRoutingTrick(rcpt.lookupLocal)) {
      return this.relayDenied(info, rcpt.address, 'routing characters in the local part');
    }
    if (this.srs && isSrsLocalPart(rcpt.lookupLocal)) return this.decideSrs(this.srs, rcpt.address);
    return this.decide(rcpt.address, await this.resolver.resolveLocal(`${rcpt.lookupLocal}@${rcpt.domain}`));
  }

  /**
   * A reply to mail we forwarded with an SRS sender (src/srs/): it goes to the original sender, as
   * if the SRS address were an alias of it, but only if we made that address (its hash) and
   * recently (its day). Anything else is refused here, or anyone could relay through us.
   */
  private async decideSrs(srs: SrsCodec, address: string): Promise<RecipientDecision> {
    // As the client wrote it; reverse() folds case the way libsrs2 does.
    const r = srs.reverse(splitAddress(address)?.local ?? '');
    switch (r.kind) {
      case 'valid': {
        const original = parseRecipient(r.address);
        if (original.kind !== 'domain') break;
        if (await this.store.isLocalDomain(original.domain)) {
          return this.decide(address, await this.resolver.resolveLocal(`${original.lookupLocal}@${original.domain}`));
        }
        return { accept: true, address, mailboxes: [], forwards: [r.address] };
      }
      case 'expired':
        this.log?.info({ recipient: address, age_days: r.ageDays }, 'expired SRS address');
        return refuse(550, '5.1.1', `<${address}>: SRS address expired`);
      case 'forged':
      case 'not-srs':
        break;
      default:
        return assertNever(r);
    }
    this.log?.info({ recipient: address }, 'forged SRS address');
    return refuse(550, '5.1.1', `<${address}>: Invalid SRS address`);
  }

  private decide(address: string, r: Resolution): RecipientDecision {
    switch (r.kind) {
      case 'resolved': {
        if (r.dangling.length > 0) {
          this.log?.warn({ recipient: address, targets: r.dangling }, 'alias targets that resolve to no mailbox');
        }
        // An alias on our own domain is our mail even when every target is elsewhere, so it is
        // accepted from anyone: the operator chose where it goes, the client did not (not a relay).
        const forwards = [...new Set(r.remote)];
        return { accept: true, address, mailboxes: r.mailboxes, ...(forwards.length > 0 ? { forwards } : {}) };
      }
      case 'unknown':
        // RFC 3463 5.1.1: bad destination mailbox address.
        return refuse(550, '5.1.1', `<${address}>: Recipient address rejected: User unknown`);
      case 'loop':
      case 'too-deep':
        // RFC 3463 5.4.6: routing loop detected. A configuration mistake, so it is logged loudly.
        this.log?.warn({ recipient: address, chain: r.chain, kind: r.kind }, 'alias loop');
        return refuse(550, '5.4.6', `<${address}>: Alias loop`);
      default:
        return assertNever(r);
    }
  }

  private relayDenied(info: SessionInfo, address: string, why: string): RecipientDecision {
    this.log?.info({ client: info.clientIp, recipient: address, why }, 'relay denied');
    return refuse(554, '5.7.1', `<${address}>: Relay access denied`);
  }
}

function refuse(code: number, enhanced: string, text: string): RecipientDecision {
  return { accept: false, reply: reply(code, enhanced, text) };
}

/** A domain we could answer a bounce to: a hostname, or an IPv4/IPv6 address literal (RFC 5321 4.1.3). */
function isValidSender(sender: string): boolean {
  const parts = splitAddress(sender);
  if (!parts) return false;
  const literal = /^\[(.*)\]$/.exec(parts.domain);
  if (!literal) return normalizeDomain(parts.domain) !== undefined;
  const [, inside = ''] = literal;
  if (/^ipv6:/i.test(inside)) return isIPv6(inside.slice(5));
  return isIPv4(inside);
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}
