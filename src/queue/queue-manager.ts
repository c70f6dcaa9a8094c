// The queue manager: takes accepted messages from SMTP sessions (it is their MessageSink), makes
// them durable in the spool, and delivers them in the background. Like Postfix's qmgr it is the
// seam between accepting and delivering: a session never waits for a delivery, and a delivery
// never touches a session.

import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Envelope, QueueId } from '../smtp/envelope.js';
import type { MessageSink } from '../smtp/session-host.js';
import { SmtpError } from '../smtp/reply.js';
import type { QueueEntry, Store } from '../store/store.js';
import { Maildirs } from '../delivery/maildir.js';
import { deliverLocally, remoteRecipients } from '../delivery/local-delivery.js';
import { receivedHeader } from '../delivery/received-header.js';
import { DeliveryScheduler } from './delivery-scheduler.js';
import { QueueBookkeeping } from './queue-bookkeeping.js';
import { defaultQueueIds } from './queue-id.js';
import { Spool, type SpoolStats } from './spool.js';

const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

export interface QueueManagerOptions {
  /** Spool in <dataDir>/spool, mailboxes in <dataDir>/mail. */
  readonly dataDir: string;
  /** Our name in Received headers and Maildir file names. */
  readonly hostname: string;
  readonly store: Store;
  readonly logger: Logger;
  /** Messages being delivered at once. */
  readonly maxConcurrentDeliveries?: number;
  /** First retry delay after a failed delivery; doubles per attempt up to retryMaxMs. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** How long close() waits for running deliveries. */
  readonly closeTimeoutMs?: number;
  /** Spool segment size (tests make it small). */
  readonly maxSegmentBytes?: number;
  /** For tests: accept and spool, but deliver nothing until resumeDelivery(). */
  readonly deliveryPaused?: boolean;
}

export interface QueueStats {
  accepted: number;
  /** Messages with every recipient finished. */
  delivered: number;
  /** Messages left in the queue for recipients that cannot be delivered yet (remote). */
  deferred: number;
  /** Delivery attempts that failed and will be retried. */
  failedAttempts: number;
  /** Messages being delivered right now. */
  inFlight: number;
}

/** A message on its way: what one delivery attempt needs. */
interface DeliveryJob {
  readonly queueId: QueueId;
  readonly envelope: Envelope;
  /** The spooled bytes, kept from accept() for the first attempt; later ones read the spool. */
  message: Buffer | undefined;
  /** Mailboxes that already have their copy. */
  readonly delivered: Set<string>;
  attempts: number;
}

export class QueueManager implements MessageSink {
  private readonly counters = { accepted: 0, delivered: 0, deferred: 0, failedAttempts: 0 };
  private readonly scheduler: DeliveryScheduler<DeliveryJob>;
  private closing = false;
  /** Bytes of message data held by jobs waiting for a delivery slot. */
  private bufferedBytes = 0;

  private constructor(
    private readonly opts: QueueManagerOptions,
    private readonly spool: Spool,
    private readonly maildirs: Maildirs,
    private readonly bookkeeping: QueueBookkeeping,
  ) {
    this.scheduler = new DeliveryScheduler({
      concurrency: opts.maxConcurrentDeliveries ?? 64,
      attempt: (job) => this.attempt(job),
      paused: opts.deliveryPaused ?? false,
    });
  }

  /** Opens the spool and restarts delivery of everything a previous run left undelivered. */
  static async open(opts: QueueManagerOptions): Promise<QueueManager> {
    const { spool, recovered } = await Spool.open({
      dir: join(opts.dataDir, 'spool'),
      logger: opts.logger,
      maxSegmentBytes: opts.maxSegmentBytes,
    });
    const bookkeeping = new QueueBookkeeping(opts.store, opts.logger);
    const qm = new QueueManager(opts, spool, new Maildirs(join(opts.dataDir, 'mail'), opts.hostname), bookkeeping);
    await bookkeeping.reconcile(recovered.map((m) => queueEntry(m.queueId, m.envelope, m.size, 'active')));
    if (recovered.length > 0) opts.logger.info({ messages: recovered.length }, 'queue: recovered undelivered messages');
    for (const m of recovered) {
      qm.scheduler.add({ queueId: m.queueId, envelope: m.envelope, message: undefined, delivered: new Set(m.delivered), attempts: 0 });
    }
    return qm;
  }

  get stats(): QueueStats & { spool: SpoolStats } {
    return { ...this.counters, inFlight: this.scheduler.inFlight, spool: { ...this.spool.stats } };
  }

  /**
   * Prepends our Received header, spools the message durably and schedules its delivery.
   * Resolves with the queue id once the message is on disk: only then may the session say 250.
   * `recordAuthUser`: name the authenticated account in the Received header ([submission] received_auth).
   */
  async accept(envelope: Envelope, message: Buffer, opts: { recordAuthUser?: boolean } = {}): Promise<QueueId> {
    if (this.closing) throw new SmtpError(451, '4.3.2', 'Server is shutting down, try again later');
    const queueId = defaultQueueIds.next();
    const received = receivedHeader(envelope, { hostname: this.opts.hostname, queueId, recordAuthUser: opts.recordAuthUser });
    const header = Buffer.from(received, 'utf8');
    const spooled = Buffer.concat([header, message]);
    try {
      await this.spool.append(queueId, envelope, spooled);
    } catch (err) {
      this.opts.logger.error({ err, queue_id: queueId }, 'queue: cannot spool message');
      // RFC 3463 4.3.1: mail system full; the client keeps the message and retries later.
      if (isDiskFull(err)) throw new SmtpError(452, '4.3.1', 'Insufficient system storage, try again later', { cause: err });
      throw err;
    }
    this.counters.accepted++;
    this.bookkeeping.put(queueEntry(queueId, envelope, spooled.length, 'active'));
    // While deliveries keep up, the first attempt uses the bytes we already have; when they fall
    // behind, waiting jobs read the spool instead, so a backlog does not grow memory.
    const keep = this.bufferedBytes + spooled.length <= MAX_BUFFERED_BYTES;
    if (keep) this.bufferedBytes += spooled.length;
    this.scheduler.add({ queueId, envelope, message: keep ? spooled : undefined, delivered: new Set(), attempts: 0 });
    return queueId;
  }

  /** Starts deliveries held back by `deliveryPaused`. */
  resumeDelivery(): void {
    this.scheduler.resume();
  }

  /**
   * Takes no new messages, waits (up to closeTimeoutMs) for running deliveries, then makes the
   * last done records durable. Anything unfinished stays in the spool for the next start.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.scheduler.stop();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.opts.closeTimeoutMs ?? 10_000)));
    await Promise.race([this.scheduler.idle(), timeout]);
    clearTimeout(timer);
    await this.spool.close();
    await this.bookkeeping.flush().catch((err: unknown) => this.opts.logger.error({ err }, 'queue: final store update failed'));
  }

  private async attempt(job: DeliveryJob): Promise<void> {
    const log = this.opts.logger;
    try {
      if (job.message) this.bufferedBytes -= job.message.length;
      const message = job.message ?? (await this.spool.read(job.queueId)).message;
      job.message = undefined; // a retry reads it back instead of holding it in memory
      const result = await deliverLocally(this.maildirs, job.envelope, message, job.delivered);
      for (const mailbox of result.delivered) job.delivered.add(mailbox);
      if (result.failed.length > 0) {
        this.spool.markDelivered(job.queueId, result.delivered);
        for (const f of result.failed) log.error({ err: f.error, queue_id: job.queueId, mailbox: f.mailbox }, 'delivery to mailbox failed');
        this.retry(job);
        return;
      }
      const remote = remoteRecipients(job.envelope);
      if (remote.length > 0) {
        this.spool.markDelivered(job.queueId, result.delivered);
        this.counters.deferred++;
        this.bookkeeping.put(queueEntry(job.queueId, job.envelope, message.length, 'deferred'));
        log.warn(
          { queue_id: job.queueId, recipients: remote.map((r) => r.address), delivered: [...job.delivered] },
          'remote delivery is not available yet; recipients stay queued',
        );
        return;
      }
      this.spool.markDone(job.queueId);
      this.counters.delivered++;
      this.bookkeeping.remove(job.queueId);
      log.info({ queue_id: job.queueId, mailboxes: [...job.delivered] }, 'delivered');
    } catch (err) {
      log.error({ err, queue_id: job.queueId }, 'delivery attempt failed');
      this.retry(job);
    }
  }

  private retry(job: DeliveryJob): void {
    this.counters.failedAttempts++;
    job.attempts++;
    const base = this.opts.retryBaseMs ?? 5_000;
    const delay = Math.min(base * 2 ** (job.attempts - 1), this.opts.retryMaxMs ?? 10 * 60_000);
    this.scheduler.later(job, delay);
  }
}

function queueEntry(queueId: QueueId, envelope: Envelope, size: number, state: QueueEntry['state']): QueueEntry {
  return {
    queueId,
    sender: envelope.sender,
    recipients: envelope.recipients.map((r) => r.address),
    size,
    receivedAt: envelope.arrival.receivedAt,
    state,
  };
}

function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
