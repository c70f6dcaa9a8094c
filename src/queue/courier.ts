// The one contract between the queue and whatever carries a message to its recipients: for local
// mailboxes the Maildir courier or, with [delivery] lmtp, the LMTP courier (src/delivery/local/),
// and the SMTP courier for other domains (src/delivery/remote/). The queue groups due recipients into
// jobs, hands each job to its courier, and gets one typed outcome per recipient back: retries,
// bounces and notices are then the queue's decisions alone.

import type { DsnNotify, MailParams, QueueId } from '../mail/envelope.js';
import type { Reply } from '../mail/reply.js';

export interface CourierRecipient {
  readonly address: string;
  /** RFC 3461 NOTIFY ([] is NEVER) and ORCPT, passed on to a peer that supports DSN. */
  readonly notify?: readonly DsnNotify[] | undefined;
  readonly orcpt?: { readonly addrType: string; readonly address: string } | undefined;
  /** The local mailboxes it resolved to at RCPT time; empty for a recipient elsewhere. */
  readonly mailboxes: readonly string[];
}

export interface CourierJob {
  readonly queueId: QueueId;
  readonly sender: string;
  readonly mailParams: MailParams;
  readonly recipients: readonly CourierRecipient[];
  /** Every recipient of a remote job is at this domain; a local job has our own. */
  readonly domain: string;
  /** As spooled: our Received header first. */
  readonly message: Buffer;
  /** Mailboxes that got their copy in an earlier attempt (the spool's marks): never twice. */
  readonly alreadyDelivered: ReadonlySet<string>;
  /** DMARC asked for quarantine (Envelope.quarantine): a local courier files it in JUNK_FOLDER. */
  readonly quarantine?: boolean | undefined;
}

/**
 * What became of one recipient. `reply` is what the next hop said (ours for a Maildir), or
 * undefined when nobody said anything (no route, no host reachable). `mailboxes` lists the
 * recipient's mailboxes whose copy is durable since this attempt, for the spool's marks.
 */
export type DeliveryOutcome =
  | {
      readonly kind: 'delivered';
      readonly reply: Reply;
      readonly remoteHost: string;
      /** The peer offered DSN and got our NOTIFY with the RCPT (RFC 3461 4.1): it reports from here on. */
      readonly dsnPassedOn?: boolean | undefined;
      readonly mailboxes?: readonly string[] | undefined;
    }
  | {
      readonly kind: 'deferred';
      readonly reply: Reply | undefined;
      readonly remoteHost?: string | undefined;
      readonly reason: string;
      readonly mailboxes?: readonly string[] | undefined;
    }
  | {
      readonly kind: 'failed';
      readonly reply: Reply | undefined;
      readonly remoteHost?: string | undefined;
      readonly reason: string;
      /** RFC 3463 enhanced status for the DSN, e.g. 5.1.1 (the reply's, or one that fits). */
      readonly status: string;
    };

export interface Courier {
  /** One outcome per recipient of the job, in order. Never throws. */
  deliver(job: CourierJob): Promise<DeliveryOutcome[]>;
  /**
   * Shutdown, once the queue has waited its grace for running deliveries: cuts every session in
   * flight at once (a peer that never greets or never answers would hold the stop for its RFC 5321
   * timeout, minutes), and those deliveries come back deferred. No session is opened after it.
   */
  abort?(): void;
  /** Ends the sessions it keeps open, once the queue has closed; never throws. */
  close?(): Promise<void>;
  /**
   * At startup, before anything is delivered: for messages the spool gave back, which of the
   * given local mailboxes (those without a durable mark) already hold the copy that the previous
   * run filed before it died. The queue counts those as delivered, so a crash between a copy and
   * its mark does not file the message twice. A courier that cannot look leaves this out (LMTP:
   * the server owns the mailboxes); a mailbox it cannot look into is simply not in the answer.
   */
  findEarlierCopies?(unmarked: ReadonlyMap<QueueId, readonly string[]>): Promise<Map<QueueId, string[]>>;
}

/** Where quarantined mail is filed: the folder name mail programs give the RFC 6154 \\Junk use. */
export const JUNK_FOLDER = 'Junk';
