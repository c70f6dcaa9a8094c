// What the queue needs from the outbound relay (src/delivery/remote-delivery.ts): one call per
// destination domain, one outcome per recipient. Written here as the issue-4 contract says, so the
// queue depends on this shape only; RemoteDelivery satisfies it structurally.

import type { MailParams } from '../mail/envelope.js';

export interface OutboundRecipient {
  readonly address: string;
  /** RFC 3461 NOTIFY and ORCPT, passed on to a peer that supports DSN. */
  readonly notify?: string[] | undefined;
  readonly orcpt?: { addrType: string; address: string } | undefined;
}

export type OutboundOutcome =
  | {
      readonly kind: 'delivered';
      readonly reply: string;
      readonly remoteHost: string;
      /** The peer offered DSN and got our NOTIFY with the RCPT: it reports from here on. */
      readonly dsnPassedOn?: boolean | undefined;
    }
  | { readonly kind: 'deferred'; readonly reply: string; readonly remoteHost?: string | undefined; readonly reason: string }
  | {
      readonly kind: 'failed';
      readonly reply: string;
      readonly remoteHost?: string | undefined;
      readonly reason: string;
      /** Enhanced status code, e.g. 5.1.1. */
      readonly status: string;
    };

export interface OutboundJob {
  queueId: string;
  sender: string;
  recipients: OutboundRecipient[];
  /** Every recipient of the job is at this domain. */
  domain: string;
  message: Buffer;
  mailParams: MailParams;
}

export interface OutboundDelivery {
  /** One outcome per recipient, in order; never throws. */
  deliver(job: OutboundJob): Promise<OutboundOutcome[]>;
}
