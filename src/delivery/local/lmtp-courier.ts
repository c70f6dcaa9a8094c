// The courier for local mailboxes when an LMTP server (RFC 2033) files the mail, as
// [delivery] lmtp says. One attempt is one LMTP transaction: a RCPT per mailbox the job's
// recipients resolved to (each mailbox once, none that got its copy in an earlier attempt), the
// message once, and then the server's reply for each accepted mailbox (RFC 2033 4.2). A
// recipient's outcome combines its mailboxes' replies, and names the mailboxes whose copy is
// durable, so that a retry sends only to the others.
//
// Sessions are kept for the next job (client/connection-pool.ts, RSET in between) and closed
// after IDLE_MS. A kept session the server has closed meanwhile fails its RSET before anything
// of the message is sent: a new session is opened at once and the job goes on.
//
// Duplicates (RFC 2033 4.2, and RFC 1047's old problem): when the session breaks after the final
// dot, the server may have filed the message for recipients whose reply we never read. Those are
// deferred and sent again, so such a mailbox can get the message twice. The other way, marking
// them delivered, could lose mail; a duplicate is the lesser harm. The window is the time the
// server takes to answer, after it has stored the copies.
// A crash of ours after the server's reply and before the spool's "delivered" mark is durable
// (the mark rides along with the spool's next fsync: milliseconds under load, up to a second
// when traffic stops) has the same effect after the restart. Unlike a Maildir (maildir.ts), the
// server's mailboxes cannot be searched for the earlier copy, so this courier offers no
// findEarlierCopies: LMTP delivery is at least once. Dovecot 2.3 has no lmtp_ setting that drops
// a repeat; a Sieve script with "duplicate" (RFC 7352) can, keyed on Message-ID.

import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { reply } from '../../mail/reply.js';
import { JUNK_FOLDER, type Courier, type CourierJob, type CourierRecipient, type DeliveryOutcome } from '../../queue/courier.js';
import { RFC5321_TIMEOUTS, StaleSessionError, type ClientEndpoint, type ClientTimeouts, type OutboundTransaction } from '../client/client-session.js';
import { ConnectionPool } from '../client/connection-pool.js';
import { recipientOutcome } from '../client/recipient-outcome.js';
import { SmtpClientError } from '../client/reply-stream.js';
import { LmtpClientConnection, lmtpPeerName } from './lmtp-client.js';

/** Sessions open to the LMTP server at once (Postfix's lmtp uses its destination limit, 20). */
const MAX_CONNECTIONS = 10;
/** How long a session is kept idle (Postfix: lmtp_connection_cache_time_limit, 2s). */
const IDLE_MS = 5_000;
const POOL_KEY = 'lmtp';

const ALREADY_DELIVERED = reply(250, '2.0.0', 'Delivered to the mailbox in an earlier attempt');

export interface LmtpCourierOptions {
  readonly endpoint: ClientEndpoint;
  /** Our name in LHLO. */
  readonly lhloName: string;
  /**
   * [recipient_delimiter]: quarantined mail goes to RCPT TO:<user+Junk@domain>, which Dovecot
   * files in Junk (lmtp_save_to_detail_mailbox, as `postern dovecot config` sets it up).
   * Empty: no detail can be given, and quarantined mail goes to the INBOX like any other.
   */
  readonly recipientDelimiter?: string;
  readonly logger: Logger;
  readonly maxConnections?: number;
  readonly idleMs?: number;
  readonly timeouts?: ClientTimeouts;
}

export class LmtpCourier implements Courier {
  private readonly pool: ConnectionPool<LmtpClientConnection>;
  private readonly peer: string;
  private readonly timeouts: ClientTimeouts;
  /** abort(): every session listens to it (connectSocket), so none outlives the stop. */
  private readonly stopping = new AbortController();

  constructor(private readonly opts: LmtpCourierOptions) {
    // One listener per open session; up to maxConnections of them is no leak.
    setMaxListeners(0, this.stopping.signal);
    const max = opts.maxConnections ?? MAX_CONNECTIONS;
    this.pool = new ConnectionPool({ perDestination: max, total: max, idleMs: opts.idleMs ?? IDLE_MS }, opts.logger);
    this.peer = lmtpPeerName(opts.endpoint);
    this.timeouts = opts.timeouts ?? RFC5321_TIMEOUTS;
  }

  /** One outcome per recipient, in job order. Never throws. */
  async deliver(job: CourierJob): Promise<DeliveryOutcome[]> {
    try {
      const todo = [...new Set(job.recipients.flatMap((r) => r.mailboxes))].filter((m) => !job.alreadyDelivered.has(m));
      const byMailbox = todo.length > 0 ? await this.transact(job, todo) : new Map<string, DeliveryOutcome>();
      return job.recipients.map((r) => this.combine(r, job.alreadyDelivered, byMailbox));
    } catch (err) {
      this.opts.logger.error({ err, queue_id: job.queueId }, 'lmtp delivery: internal error');
      return job.recipients.map(() => ({ kind: 'deferred', reply: undefined, remoteHost: this.peer, reason: 'internal error in the delivery agent, will retry' }));
    }
  }

  /** user@domain -> user+Junk@domain: the mailbox's Junk folder, by the LMTP server's detail rule. */
  private junkAddress(mailbox: string): string {
    const delimiter = this.opts.recipientDelimiter ?? '';
    const at = mailbox.lastIndexOf('@');
    if (delimiter === '' || at <= 0) return mailbox;
    return `${mailbox.slice(0, at)}${delimiter}${JUNK_FOLDER}${mailbox.slice(at)}`;
  }

  /** Cuts the sessions in flight: their mailboxes come back deferred, and stay queued. */
  abort(): void {
    this.stopping.abort();
  }

  /** QUITs idle sessions. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  /** One transaction for the mailboxes in `todo`; each gets an outcome, whatever happens. */
  private async transact(job: CourierJob, todo: readonly string[]): Promise<Map<string, DeliveryOutcome>> {
    const tx: OutboundTransaction = {
      sender: job.sender,
      recipients: todo.map((address) => ({ address: job.quarantine ? this.junkAddress(address) : address })),
      message: job.message,
      // RET and ENVID stay with us: filing into the mailbox is final delivery, and its DSNs are
      // ours to send (RFC 3461 4.1), as for a Maildir.
      mailParams: { body: job.mailParams.body, smtputf8: job.mailParams.smtputf8 },
    };
    const byMailbox = new Map<string, DeliveryOutcome>();
    const lease = await this.pool.acquire(POOL_KEY);
    let session = lease.idle;
    try {
      if (session && !session.usable) {
        session.close();
        session = undefined;
      }
      let reused = session !== undefined;
      for (;;) {
        session ??= await LmtpClientConnection.open({
          endpoint: this.opts.endpoint,
          lhloName: this.opts.lhloName,
          timeouts: this.timeouts,
          logger: this.opts.logger,
          signal: this.stopping.signal,
        });
        try {
          const results = await session.send(tx);
          results.forEach((result, i) => byMailbox.set(todo[i] ?? '', recipientOutcome(result, this.peer)));
          break;
        } catch (err) {
          if (!(err instanceof StaleSessionError) || !reused) throw err;
          this.opts.logger.debug({ peer: this.peer, reason: err.message }, 'lmtp delivery: kept session was closed, opening a new one');
          session.close();
          session = undefined;
          reused = false;
        }
      }
    } catch (err) {
      session?.close();
      session = undefined;
      if (!(err instanceof SmtpClientError)) throw err;
      this.opts.logger.info({ queue_id: job.queueId, peer: this.peer, reason: err.message }, 'lmtp delivery: session failed');
      for (const m of todo) byMailbox.set(m, { kind: 'deferred', reply: err.reply, remoteHost: this.peer, reason: err.message });
    } finally {
      lease.release(session);
    }
    return byMailbox;
  }

  /**
   * A recipient is delivered once each of its mailboxes has its copy; deferred while any mailbox
   * may still get one (a retry goes to those only); failed when the rest were refused for good.
   */
  private combine(r: CourierRecipient, earlier: ReadonlySet<string>, byMailbox: ReadonlyMap<string, DeliveryOutcome>): DeliveryOutcome {
    const now = r.mailboxes.filter((m) => !earlier.has(m)).map((m) => ({ mailbox: m, outcome: byMailbox.get(m) }));
    const mailboxes = now.filter((x) => x.outcome?.kind === 'delivered').map((x) => x.mailbox);
    const about = (mailbox: string, reason: string): string => (mailbox === r.address.toLowerCase() ? reason : `${reason} (mailbox ${mailbox})`);
    for (const { mailbox, outcome } of now) {
      if (outcome === undefined) {
        return { kind: 'deferred', reply: undefined, remoteHost: this.peer, reason: about(mailbox, 'no delivery was tried'), mailboxes };
      }
      if (outcome.kind === 'deferred') return { ...outcome, reason: about(mailbox, outcome.reason), mailboxes };
    }
    for (const { mailbox, outcome } of now) {
      if (outcome?.kind === 'failed') return { ...outcome, reason: about(mailbox, outcome.reason) };
    }
    const first = now[0]?.outcome;
    return { kind: 'delivered', reply: first?.kind === 'delivered' ? first.reply : ALREADY_DELIVERED, remoteHost: this.peer, mailboxes };
  }
}
