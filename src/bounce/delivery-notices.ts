// Deciding who hears about a delivery and sending them a DSN (dsn.ts), queued through
// our own queue like any message: a local sender finds it in their Maildir, a remote one gets it
// relayed. Like Postfix's bounce daemon, it never writes to a sender that is <> (RFC 5321 4.5.5:
// that is how bounce loops are prevented); those failures go to the postmaster instead, and a
// notice to the postmaster that fails itself is only logged.

import type { Logger } from 'pino';
import type { Envelope, EnvelopeRecipient, QueueId } from '../mail/envelope.js';
import type { DirectoryStore } from '../store/store.js';
import { RecipientResolver } from '../directory/recipient-resolver.js';
import { parseRecipient } from '../directory/recipient-address.js';
import { normalizeDomain } from '../mail/address.js';
import { buildDsn, type DsnAction, type DsnRecipient } from './dsn.js';
import type { RecipientState } from '../queue/recipient-state.js';
import type { RetryPolicy } from '../queue/retry-policy.js';
import type { NoticeKind, NoticeSender, OriginalMessage, SubmitNotice } from '../queue/notice-sender.js';

/**
 * RFC 3461 4.1: without NOTIFY, a server sends failure DSNs and may send delay DSNs. We send both
 * (absent NOTIFY = FAILURE,DELAY): a sender whose mail is late for hours should hear about it.
 * SUCCESS reports only go to those who asked. NOTIFY=NEVER (the empty list) silences all of them.
 */
export function wantsNotice(r: EnvelopeRecipient, kind: NoticeKind): boolean {
  const notify = r.params.notify;
  switch (kind) {
    case 'failed':
      return notify === undefined || notify.includes('FAILURE');
    case 'delayed':
      return notify === undefined || notify.includes('DELAY');
    case 'delivered':
      return notify !== undefined && notify.includes('SUCCESS');
  }
}

export interface DeliveryNoticesOptions {
  readonly hostname: string;
  readonly store: DirectoryStore;
  /** [postmaster] of the config: where bounces of bounces go. */
  readonly postmaster: string;
  readonly recipientDelimiter: string;
  readonly logger: Logger;
  readonly submit: SubmitNotice;
}

/** What QueueManagerOptions.notices wants: DeliveryNotices with the queue's way back in. */
export function deliveryNotices(opts: Omit<DeliveryNoticesOptions, 'submit'>): (submit: SubmitNotice) => NoticeSender {
  return (submit) => new DeliveryNotices({ ...opts, submit });
}

export class DeliveryNotices implements NoticeSender {
  private readonly resolver: RecipientResolver;

  constructor(private readonly opts: DeliveryNoticesOptions) {
    this.resolver = new RecipientResolver(opts.store, {
      recipientDelimiter: opts.recipientDelimiter,
      postmaster: opts.postmaster,
      hostname: opts.hostname,
    });
  }

  /** The address that notices to the postmaster are sent to. */
  get postmasterAddress(): string {
    return this.opts.postmaster !== '' ? this.opts.postmaster : `postmaster@${normalizeDomain(this.opts.hostname) ?? this.opts.hostname}`;
  }

  /**
   * Sends one DSN about these recipients, if anyone should get one. Resolves once it is queued
   * (so the caller may then forget the recipients: a crash repeats the notice, never loses it).
   * Returns the DSN's queue id, or undefined when none was due.
   */
  async send(original: OriginalMessage, kind: NoticeKind, states: readonly RecipientState[], policy: RetryPolicy): Promise<QueueId | undefined> {
    const { envelope, queueId } = original;
    const log = this.opts.logger;
    let to: string;
    let about: readonly RecipientState[];
    if (envelope.sender === '') {
      // A bounce (or other notice) could not be delivered: only failures matter, and they go to
      // the postmaster, who can fix the cause. Our own notice to the postmaster is not retried.
      if (kind !== 'failed') return undefined;
      about = states.filter((s) => s.recipient.address !== this.postmasterAddress);
      if (about.length < states.length) {
        log.error({ queue_id: queueId, recipients: states.map((s) => s.recipient.address) }, 'notice to the postmaster undeliverable; dropped');
      }
      to = this.postmasterAddress;
    } else {
      // RFC 3461 4.1: a relay that passed NOTIFY=SUCCESS on to a next hop offering DSN leaves the
      // success report to it ("relayed" is only for a next hop without DSN).
      about = states.filter((s) => wantsNotice(s.recipient, kind) && !(kind === 'delivered' && s.dsnPassedOn));
      to = envelope.sender;
    }
    if (about.length === 0) return undefined;

    let recipients = await this.route(to);
    if (recipients.length === 0) {
      log.warn({ queue_id: queueId, sender: to }, 'the sender of a bounced message has no mailbox here; the notice goes to the postmaster');
      to = this.postmasterAddress;
      recipients = await this.route(to);
    }
    const now = Date.now();
    const dsn = buildDsn({
      reportingMta: this.opts.hostname,
      to,
      queueId,
      envid: envelope.mailParams.envid,
      arrivalDate: envelope.arrival.receivedAt,
      ret: envelope.mailParams.ret,
      recipients: about.map((s) => dsnRecipient(s, kind, envelope.arrival.receivedAt + policy.giveUpMs)),
      original: original.message,
      now,
    });
    const noticeEnvelope: Envelope = {
      sender: '',
      mailParams: { body: dsn.some((b) => b > 0x7f) ? '8BITMIME' : '7BIT' },
      recipients,
      arrival: {
        clientIp: '127.0.0.1',
        clientPort: 0,
        helo: this.opts.hostname,
        protocol: 'LOCAL',
        listener: 'mx',
        receivedAt: now,
      },
    };
    const dsnId = await this.opts.submit(noticeEnvelope, dsn);
    log.info(
      { queue_id: queueId, dsn_queue_id: dsnId, kind, to, recipients: about.map((s) => s.recipient.address) },
      'delivery status notification queued',
    );
    return dsnId;
  }

  /** Envelope recipients for mail to `address`: its local mailboxes, or itself when remote. */
  private async route(address: string): Promise<EnvelopeRecipient[]> {
    const rcpt = parseRecipient(address);
    if (rcpt.kind === 'bare-postmaster') return this.resolved(address, await this.resolver.resolvePostmaster());
    if (rcpt.kind !== 'domain') return [];
    if (!(await this.opts.store.isLocalDomain(rcpt.domain))) return [{ address: rcpt.address, params: {}, mailboxes: [] }];
    if (address === this.postmasterAddress && this.opts.postmaster === '') {
      return this.resolved(address, await this.resolver.resolvePostmaster());
    }
    return this.resolved(rcpt.address, await this.resolver.resolveLocal(`${rcpt.lookupLocal}@${rcpt.domain}`));
  }

  private resolved(address: string, r: Awaited<ReturnType<RecipientResolver['resolveLocal']>>): EnvelopeRecipient[] {
    if (r.kind !== 'resolved') return [];
    const out: EnvelopeRecipient[] = [];
    if (r.mailboxes.length > 0) out.push({ address, params: {}, mailboxes: r.mailboxes });
    for (const target of r.remote) out.push({ address: target, params: {}, mailboxes: [] });
    return out;
  }
}

function dsnRecipient(s: RecipientState, kind: NoticeKind, giveUpAt: number): DsnRecipient {
  const action: DsnAction = kind === 'delivered' ? (s.recipient.mailboxes.length > 0 ? 'delivered' : 'relayed') : kind;
  return {
    address: s.recipient.address,
    orcpt: s.recipient.params.orcpt,
    action,
    status: s.lastStatus ?? (kind === 'failed' ? '5.0.0' : kind === 'delayed' ? '4.0.0' : '2.0.0'),
    remoteHost: s.remoteHost ?? undefined,
    reply: s.lastReply ?? undefined,
    reason: s.lastReason ?? (kind === 'delivered' ? 'delivered.' : 'not delivered yet.'),
    lastAttemptAt: s.lastAttemptAt ?? undefined,
    willRetryUntil: kind === 'delayed' ? giveUpAt : undefined,
  };
}
