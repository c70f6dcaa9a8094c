// The queue manager: takes accepted messages from SMTP sessions (it is their MessageSink), has
// intake (src/intake/) make them durable in the spool, and delivers them in the background. Like
// Postfix's qmgr it is the seam between accepting and delivering: a session never waits for a
// delivery, and a delivery never touches a session.
//
// Each recipient has its own state (recipient-state.ts). Due recipients go out in jobs through
// one Courier interface (courier.ts): the local ones in one job to the local courier (Maildir, or
// LMTP), the remote ones (and the remote targets of local aliases, delivery-recipients.ts) in one job per
// domain to the SMTP courier. Each typed outcome moves its recipient on: temporary failures come
// back on their own backoff schedule (retry-policy.ts), permanent ones become DSNs (src/bounce/,
// reached through notice-sender.ts). The spool records which recipients are finished, so after
// a crash each message is delivered at least once and a finished recipient never twice.

import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Envelope, EnvelopeRecipient, QueueId } from '../mail/envelope.js';
import type { MessageSink } from '../smtp/session-host.js';
import { reply, SmtpError } from '../mail/reply.js';
import { Intake, type SpooledMessage } from '../intake/intake.js';
import { logDeliveryAttempt } from '../log/mail-log.js';
import type { QueueEntry, QueueRequest, QueueStore } from '../store/store.js';
import { splitAddress } from '../mail/address.js';
import { DeliveryScheduler } from './delivery-scheduler.js';
import type { NoticeKind, NoticeSender, SubmitNotice } from './notice-sender.js';
import { deliveryRecipients } from './delivery-recipients.js';
import { forwardSender } from './forward-sender.js';
import type { SrsCodec } from '../srs/srs.js';
import type { Courier, DeliveryOutcome } from './courier.js';
import { QueueBookkeeping } from './queue-bookkeeping.js';
import { QueueControl } from './queue-control.js';
import { defaultQueueIds } from '../mail/queue-id.js';
import {
  applyOutcome,
  finishedMark,
  fresh,
  isDue,
  isFinished,
  restoreStates,
  toStored,
  type RecipientState,
} from './recipient-state.js';
import { DEFAULT_RETRY_POLICY, delayWarningDue, retryDelay, type RetryPolicy } from './retry-policy.js';
import { Spool, type SpooledMessage as RecoveredMessage, type SpoolStats } from '../spool/spool.js';
import { deliveryAttempts, deliveryLatency, type QueueDepth } from '../metrics/metrics.js';
import type { RecentActivity } from '../util/recent-activity.js';

const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** After the couriers cut their sessions at shutdown: how long their attempts get to end and be recorded. */
const ABORTED_SETTLE_MS = 2_000;

const NOT_SET_UP: DeliveryOutcome = {
  kind: 'deferred',
  reply: reply(451, '4.3.2', 'Outbound delivery is not set up'),
  reason: 'outbound delivery is not set up on this server',
};
const INTERNAL_DEFERRAL: DeliveryOutcome = {
  kind: 'deferred',
  reply: reply(451, '4.3.0', 'Internal error during delivery'),
  reason: 'an internal error on this server; it will be retried',
};

export interface QueueManagerOptions {
  /** Spool in <dataDir>/spool, mailboxes in <dataDir>/mail. */
  readonly dataDir: string;
  /** Our name in Received headers, DSNs and Maildir file names. */
  readonly hostname: string;
  readonly store: QueueStore;
  readonly logger: Logger;
  /** Delivery to local mailboxes (MaildirCourier, or LmtpCourier with [delivery] lmtp). */
  readonly local: Courier;
  /** Delivery to other domains (RemoteDelivery); without it remote recipients wait as deferred. */
  readonly remote?: Courier | undefined;
  /** Messages being delivered at once. */
  readonly maxConcurrentDeliveries?: number;
  /** [queue] retry_first: first retry delay; doubles per attempt up to retryMaxMs. */
  readonly retryBaseMs?: number;
  /** [queue] retry_max. */
  readonly retryMaxMs?: number;
  /** [queue] give_up: a recipient still failing this long after arrival is bounced. */
  readonly giveUpMs?: number;
  /** [queue] delay_warning; 0: never. */
  readonly delayWarningMs?: number;
  /** [queue] max_received_headers: more and accept() refuses the message as a loop. */
  readonly maxReceivedHeaders?: number;
  /** Builds the bounce service (src/bounce/), given the way to queue what it generates. */
  readonly notices: (submit: SubmitNotice) => NoticeSender;
  /** How often to look for `postern queue` requests (ms); 0: only at open. */
  readonly controlPollMs?: number;
  /** How long close() waits for running deliveries. */
  readonly closeTimeoutMs?: number;
  /** Marked at every accepted message, for couriers that yield to clients (Maildirs). */
  readonly accepting?: RecentActivity | undefined;
  /** Spool segment size (tests make it small). */
  readonly maxSegmentBytes?: number;
  /** Rewrites the sender of forwarded mail (forward-sender.ts); without it, senders are kept. */
  readonly srs?: SrsCodec | undefined;
  /** For tests: accept and spool, but deliver nothing until resumeDelivery(). */
  readonly deliveryPaused?: boolean;
}

export interface QueueStats {
  accepted: number;
  /** Messages with every recipient finished (delivered or bounced). */
  delivered: number;
  /** Recipient attempts that failed temporarily and will be retried. */
  deferred: number;
  /** Message attempts that left something to retry. */
  failedAttempts: number;
  /** Recipients bounced. */
  bounced: number;
  /** DSNs queued. */
  notices: number;
  /** Messages being delivered right now. */
  inFlight: number;
}

/** Due recipients of one message that go to one courier in one call. */
interface Job {
  readonly courier: Courier | undefined;
  readonly remote: boolean;
  readonly domain: string;
  /** MAIL FROM of this job: a forward's SRS sender differs from the envelope's. */
  readonly sender: string;
  readonly states: RecipientState[];
}

/** A message in the queue and where each of its recipients stands. */
interface QueuedMessage {
  readonly queueId: QueueId;
  readonly envelope: Envelope;
  readonly size: number;
  /** The spooled bytes, kept from accept() for the first attempt; later ones read the spool. */
  message: Buffer | undefined;
  /** The spool's marks: mailboxes that have their copy, and finished recipients (finishedMark). */
  readonly marks: Set<string>;
  readonly recipients: RecipientState[];
  held: boolean;
  deleted: boolean;
  delayWarned: boolean;
  running: boolean;
}

export class QueueManager implements MessageSink {
  private readonly counters = { accepted: 0, delivered: 0, deferred: 0, failedAttempts: 0, bounced: 0, notices: 0 };
  private readonly scheduler: DeliveryScheduler<QueuedMessage>;
  private readonly messages = new Map<QueueId, QueuedMessage>();
  private readonly policy: RetryPolicy;
  private readonly notices: NoticeSender;
  private readonly control: QueueControl;
  private closing = false;
  /** Bytes of message data held by jobs waiting for a delivery slot. */
  private bufferedBytes = 0;

  private readonly intake: Intake;

  private constructor(
    private readonly opts: QueueManagerOptions,
    private readonly spool: Spool,
    private readonly bookkeeping: QueueBookkeeping,
  ) {
    this.intake = new Intake({
      spool,
      queueIds: defaultQueueIds,
      hostname: opts.hostname,
      maxReceivedHeaders: opts.maxReceivedHeaders ?? 30,
      logger: opts.logger,
    });
    this.scheduler = new DeliveryScheduler({
      concurrency: opts.maxConcurrentDeliveries ?? 64,
      attempt: (msg) => this.attempt(msg),
      paused: opts.deliveryPaused ?? false,
    });
    this.policy = {
      firstMs: opts.retryBaseMs ?? DEFAULT_RETRY_POLICY.firstMs,
      maxMs: opts.retryMaxMs ?? DEFAULT_RETRY_POLICY.maxMs,
      giveUpMs: opts.giveUpMs ?? DEFAULT_RETRY_POLICY.giveUpMs,
      delayWarningMs: opts.delayWarningMs ?? DEFAULT_RETRY_POLICY.delayWarningMs,
    };
    this.notices = opts.notices((envelope, message) => this.enqueue(envelope, message, { loopCheck: false }));
    this.control = new QueueControl({
      store: opts.store,
      logger: opts.logger,
      apply: (request) => this.applyRequest(request),
      afterBatch: () => this.bookkeeping.flush(),
      intervalMs: opts.controlPollMs ?? 1000,
    });
  }

  /**
   * Opens the spool and resumes everything a previous run left unfinished, with the retry
   * schedule the store kept; operators' requests filed meanwhile are carried out first.
   */
  static async open(opts: QueueManagerOptions): Promise<QueueManager> {
    const { spool, recovered } = await Spool.open({
      dir: join(opts.dataDir, 'spool'),
      logger: opts.logger,
      maxSegmentBytes: opts.maxSegmentBytes,
    });
    const bookkeeping = new QueueBookkeeping(opts.store, opts.logger);
    const qm = new QueueManager(opts, spool, bookkeeping);
    const stored = new Map((await opts.store.queueList()).map((e) => [e.queueId, e]));
    const recipients = new Map(recovered.map((m) => [m.queueId, deliveryRecipients(m.envelope.recipients)]));
    const earlier = await earlierCopies(opts, recovered, recipients);
    const live: QueuedMessage[] = [];
    for (const m of recovered) {
      const before = stored.get(m.queueId);
      const found = earlier.get(m.queueId) ?? [];
      const marks = new Set([...m.delivered, ...found]);
      // Durable with the next batch, so the next restart need not look again.
      spool.markDelivered(m.queueId, found);
      const msg: QueuedMessage = {
        queueId: m.queueId,
        envelope: m.envelope,
        size: m.size,
        message: undefined,
        marks,
        recipients: restoreStates(recipients.get(m.queueId) ?? [], marks, before?.recipientStates),
        held: before?.state === 'hold',
        deleted: false,
        delayWarned: before?.delayWarned ?? false,
        running: false,
      };
      if (msg.recipients.every(isFinished)) {
        spool.markDone(m.queueId);
        continue;
      }
      qm.messages.set(m.queueId, msg);
      live.push(msg);
    }
    await bookkeeping.reconcile(live.map((msg) => qm.entry(msg)));
    if (live.length > 0) opts.logger.info({ messages: live.length }, 'queue: recovered undelivered messages');
    await qm.control.poll();
    for (const msg of live) if (!msg.deleted) qm.schedule(msg);
    qm.control.start();
    return qm;
  }

  /** Messages by state, for the metrics: being delivered, due, waiting to retry, held. */
  depth(): QueueDepth {
    const depth = { active: 0, queued: 0, deferred: 0, hold: 0 };
    for (const msg of this.messages.values()) {
      if (msg.held) depth.hold++;
      else if (msg.running) depth.active++;
      else if (msg.recipients.some((s) => s.status === 'deferred')) depth.deferred++;
      else depth.queued++;
    }
    return depth;
  }

  get stats(): QueueStats & { spool: SpoolStats } {
    return { ...this.counters, inFlight: this.scheduler.inFlight, spool: { ...this.spool.stats } };
  }

  /**
   * The session's MessageSink: intake (loop check, Received header, spool) and then scheduling.
   * Resolves with the queue id once the message is on disk: only then may the session say 250.
   * `recordAuthUser`: name the authenticated account in the Received header ([submission] received_auth).
   */
  async accept(envelope: Envelope, message: Buffer, opts: { recordAuthUser?: boolean } = {}): Promise<QueueId> {
    // A client waits for this one's spool write: deliveries that yield to clients hold back.
    this.opts.accepting?.mark();
    return this.enqueue(envelope, message, { loopCheck: true, recordAuthUser: opts.recordAuthUser });
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
    await this.control.stop();
    this.scheduler.stop();
    if (!(await settlesWithin(this.scheduler.idle(), this.opts.closeTimeoutMs ?? 10_000))) {
      // A peer that never greets or never answers would hold the stop for its RFC 5321 timeout
      // (4.5.3.2: minutes). Its session is cut; the attempt ends deferred and is recorded before
      // the spool closes, so the message is retried after the restart, neither lost nor marked.
      this.opts.logger.warn({ in_flight: this.scheduler.inFlight }, 'queue: deliveries still running at shutdown; cutting their sessions');
      this.opts.local.abort?.();
      this.opts.remote?.abort?.();
      await settlesWithin(this.scheduler.idle(), ABORTED_SETTLE_MS);
    }
    await this.spool.close();
    await this.bookkeeping.close().catch((err: unknown) => this.opts.logger.error({ err }, 'queue: final store update failed'));
  }

  // --- operator actions (postern queue ...); each returns false for an unknown queue id ---

  /** Every deferred recipient of every message is due now (postqueue -f). */
  flush(): number {
    let n = 0;
    for (const msg of this.messages.values()) if (this.retry(msg.queueId)) n++;
    return n;
  }

  /** The message's deferred recipients are due now. */
  retry(queueId: QueueId): boolean {
    const msg = this.messages.get(queueId);
    if (!msg) return false;
    const now = Date.now();
    for (const s of msg.recipients) if (!isFinished(s)) s.nextAttemptAt = now;
    this.bookkeeping.put(this.entry(msg));
    if (!msg.held && !msg.running) {
      this.scheduler.cancel(msg);
      this.scheduler.add(msg);
    }
    return true;
  }

  /** No delivery attempts until release() (postsuper -h). */
  hold(queueId: QueueId): boolean {
    const msg = this.messages.get(queueId);
    if (!msg) return false;
    msg.held = true;
    this.scheduler.cancel(msg);
    this.bookkeeping.put(this.entry(msg));
    return true;
  }

  release(queueId: QueueId): boolean {
    const msg = this.messages.get(queueId);
    if (!msg) return false;
    if (!msg.held) return true;
    msg.held = false;
    this.bookkeeping.put(this.entry(msg));
    if (!msg.running) this.schedule(msg);
    return true;
  }

  /** Removes the message from the queue and the spool, with no notice to anyone (postsuper -d). */
  delete(queueId: QueueId): boolean {
    const msg = this.messages.get(queueId);
    if (!msg) return false;
    msg.deleted = true;
    this.scheduler.cancel(msg);
    this.messages.delete(queueId);
    this.spool.markDone(queueId);
    this.bookkeeping.remove(queueId);
    this.opts.logger.warn(
      { queue_id: queueId, sender: msg.envelope.sender, recipients: msg.recipients.filter((s) => !isFinished(s)).map((s) => s.recipient.address) },
      'queue: message deleted by the operator',
    );
    return true;
  }

  private async applyRequest(request: QueueRequest): Promise<void> {
    const id = request.queueId ?? '';
    let known = true;
    switch (request.action) {
      case 'flush':
        this.flush();
        return;
      case 'retry':
        known = this.retry(id);
        break;
      case 'hold':
        known = this.hold(id);
        break;
      case 'release':
        known = this.release(id);
        break;
      case 'delete':
        known = this.delete(id);
        break;
    }
    if (!known) this.opts.logger.info({ queue_id: id, request: request.action }, 'queue: request for a message no longer queued');
  }

  /** A message (a client's, or a notice of ours) through intake, then into the schedule. */
  private async enqueue(envelope: Envelope, message: Buffer, options: { loopCheck: boolean; recordAuthUser?: boolean | undefined }): Promise<QueueId> {
    if (this.closing) throw new SmtpError(451, '4.3.2', 'Server is shutting down, try again later');
    const spooled = await this.intake.admit(envelope, message, options);
    this.add(spooled);
    return spooled.queueId;
  }

  /** Takes charge of a message the spool now holds. */
  private add(spooled: SpooledMessage): void {
    this.counters.accepted++;
    const { queueId, envelope, message } = spooled;
    // While deliveries keep up, the first attempt uses the bytes we already have; when they fall
    // behind, waiting jobs read the spool instead, so a backlog does not grow memory.
    const keep = this.bufferedBytes + message.length <= MAX_BUFFERED_BYTES;
    if (keep) this.bufferedBytes += message.length;
    const msg: QueuedMessage = {
      queueId,
      envelope,
      size: message.length,
      message: keep ? message : undefined,
      marks: new Set(),
      recipients: deliveryRecipients(envelope.recipients).map(fresh),
      held: false,
      deleted: false,
      delayWarned: false,
      running: false,
    };
    this.messages.set(queueId, msg);
    this.bookkeeping.put(this.entry(msg));
    this.scheduler.add(msg);
  }

  /** One delivery attempt: every recipient that is due, then notices, then the spool's marks. */
  private async attempt(msg: QueuedMessage): Promise<void> {
    if (msg.deleted || msg.held || msg.running) return;
    msg.running = true;
    const log = this.opts.logger;
    try {
      const now = Date.now();
      const due = msg.recipients.filter((s) => isDue(s, now));
      const warn = !msg.delayWarned && delayWarningDue(this.policy, msg.envelope.arrival.receivedAt, now);
      if (due.length === 0 && !warn) return;
      const message = await this.body(msg);
      const before = new Map(due.map((s) => [s, s.status]));
      await this.deliverDue(msg, due, message, now);
      if (msg.deleted) return;

      const failed = due.filter((s) => s.status === 'failed');
      const delivered = due.filter((s) => s.status === 'delivered');
      this.counters.bounced += failed.length;
      this.counters.deferred += due.filter((s) => s.status === 'deferred').length;
      if (due.some((s) => s.status === 'deferred')) this.counters.failedAttempts++;

      try {
        await this.notify(msg, message, 'failed', failed);
        await this.notify(msg, message, 'delivered', delivered);
        if (!msg.delayWarned && delayWarningDue(this.policy, msg.envelope.arrival.receivedAt, Date.now())) {
          // Set first: a warning lost to an error is better than one sent in a loop.
          msg.delayWarned = true;
          await this.notify(msg, message, 'delayed', msg.recipients.filter((s) => !isFinished(s)));
        }
      } catch (err) {
        // Without its notice a bounced recipient must not be forgotten: try it again later.
        log.error({ err, queue_id: msg.queueId }, 'cannot queue a delivery status notification; will retry');
        for (const s of failed) {
          s.status = before.get(s) === 'deferred' ? 'deferred' : 'queued';
          s.nextAttemptAt = Date.now() + retryDelay(this.policy, s.attempts);
        }
      }
      const finished = due.filter(isFinished).map((s) => finishedMark(s.recipient.address));
      for (const mark of finished) msg.marks.add(mark);
      this.spool.markDelivered(msg.queueId, finished);
    } catch (err) {
      log.error({ err, queue_id: msg.queueId }, 'delivery attempt failed');
      this.counters.failedAttempts++;
      const later = Date.now() + this.policy.firstMs;
      for (const s of msg.recipients) if (isDue(s, Date.now())) s.nextAttemptAt = later;
    } finally {
      msg.running = false;
      this.settle(msg);
    }
  }

  /** After an attempt: forget a finished message, or record its state and wait for the next one. */
  private settle(msg: QueuedMessage): void {
    // While closing, an attempt that ends is still recorded (close() waits for running attempts
    // before it closes the spool and flushes the store); only the next attempt is not scheduled.
    if (msg.deleted) return;
    if (msg.recipients.every(isFinished)) {
      this.spool.markDone(msg.queueId);
      this.messages.delete(msg.queueId);
      this.bookkeeping.remove(msg.queueId);
      this.counters.delivered++;
      this.opts.logger.info(
        { queue_id: msg.queueId, delivered: msg.recipients.filter((s) => s.status === 'delivered').map((s) => s.recipient.address), bounced: msg.recipients.filter((s) => s.status === 'failed').map((s) => s.recipient.address) },
        'message finished',
      );
      return;
    }
    this.bookkeeping.put(this.entry(msg));
    if (!this.closing) this.schedule(msg);
  }

  /** Sets the message's timer for its next due recipient (or its delay warning). */
  private schedule(msg: QueuedMessage): void {
    if (msg.held || msg.deleted || this.closing) return;
    const now = Date.now();
    let next = Infinity;
    for (const s of msg.recipients) if (!isFinished(s)) next = Math.min(next, s.nextAttemptAt ?? now);
    const warnAt = msg.envelope.arrival.receivedAt + this.policy.delayWarningMs;
    // A warning already due goes out with the next attempt; waking for it again would spin.
    if (!msg.delayWarned && this.policy.delayWarningMs > 0 && warnAt > now) next = Math.min(next, warnAt);
    if (next === Infinity) return;
    if (next <= now) {
      this.scheduler.cancel(msg);
      this.scheduler.add(msg);
    } else {
      this.scheduler.later(msg, next - now);
    }
  }

  private async body(msg: QueuedMessage): Promise<Buffer> {
    if (msg.message) {
      const kept = msg.message;
      this.bufferedBytes -= kept.length;
      msg.message = undefined; // a retry reads it back instead of holding it in memory
      return kept;
    }
    return (await this.spool.read(msg.queueId)).message;
  }

  /**
   * The due recipients in jobs: the local ones in one for the local courier, the others in one per
   * domain for the remote courier, all at once.
   */
  private async deliverDue(msg: QueuedMessage, due: readonly RecipientState[], message: Buffer, now: number): Promise<void> {
    const jobs = new Map<string, Job>();
    for (const s of due) {
      const local = s.recipient.mailboxes.length > 0;
      const domain = local ? this.opts.hostname : (splitAddress(s.recipient.address)?.domain.toLowerCase() ?? '');
      const sender = local ? msg.envelope.sender : forwardSender(this.opts.srs, msg.envelope, s.recipient);
      // One transaction has one MAIL FROM, so forwarded copies travel apart from the others.
      const key = local ? 'local' : `remote ${domain} ${sender}`;
      const job = jobs.get(key) ?? { courier: local ? this.opts.local : this.opts.remote, remote: !local, domain, sender, states: [] };
      job.states.push(s);
      jobs.set(key, job);
    }
    await Promise.all([...jobs.values()].map((job) => this.carry(msg, job, message, now)));
  }

  /** One job through its courier; each outcome moves its recipient on, and new copies are marked. */
  private async carry(msg: QueuedMessage, job: Job, message: Buffer, now: number): Promise<void> {
    const group = job.states;
    const outcomes = await this.outcomesOf(msg, job, message);
    const ctx = { policy: this.policy, receivedAt: msg.envelope.arrival.receivedAt, now };
    const copies: string[] = [];
    group.forEach((s, i) => {
      const outcome = outcomes[i] ?? INTERNAL_DEFERRAL;
      const written = outcome.kind === 'failed' ? [] : (outcome.mailboxes ?? []);
      copies.push(...written);
      applyOutcome(s, outcome, ctx);
      countDeliveryAttempt(job.remote ? 'remote' : 'local', s.status, msg.envelope.arrival.receivedAt);
      logDeliveryAttempt(this.opts.logger, {
        queueId: msg.queueId,
        local: !job.remote,
        recipient: s.recipient.address,
        status: s.status,
        reply: s.lastReply,
        reason: s.lastReason,
        remoteHost: s.remoteHost,
        attempts: s.attempts,
        mailboxes: written,
      });
    });
    for (const mailbox of copies) msg.marks.add(mailbox);
    if (copies.length > 0) this.spool.markDelivered(msg.queueId, copies);
  }

  private async outcomesOf(
    msg: QueuedMessage,
    { courier, domain, sender, states: group }: Job,
    message: Buffer,
  ): Promise<DeliveryOutcome[]> {
    if (!courier) return group.map(() => NOT_SET_UP);
    try {
      const outcomes = await courier.deliver({
        queueId: msg.queueId,
        sender,
        mailParams: msg.envelope.mailParams,
        recipients: group.map((s) => ({
          address: s.recipient.address,
          notify: s.recipient.params.notify,
          orcpt: s.recipient.params.orcpt,
          mailboxes: s.recipient.mailboxes,
        })),
        domain,
        message,
        alreadyDelivered: msg.marks,
        quarantine: msg.envelope.quarantine === true,
      });
      if (outcomes.length !== group.length) throw new Error(`the courier gave ${outcomes.length} outcomes for ${group.length} recipients`);
      return outcomes;
    } catch (err) {
      this.opts.logger.error({ err, queue_id: msg.queueId, domain }, 'delivery failed unexpectedly');
      return group.map(() => INTERNAL_DEFERRAL);
    }
  }

  private async notify(msg: QueuedMessage, message: Buffer, kind: NoticeKind, states: readonly RecipientState[]): Promise<void> {
    if (states.length === 0) return;
    const id = await this.notices.send({ queueId: msg.queueId, envelope: msg.envelope, message }, kind, states, this.policy);
    if (id !== undefined) this.counters.notices++;
  }

  private entry(msg: QueuedMessage): QueueEntry {
    const now = Date.now();
    const waiting = msg.recipients.some((s) => s.status === 'deferred') && !msg.recipients.some((s) => isDue(s, now));
    return {
      queueId: msg.queueId,
      sender: msg.envelope.sender,
      recipients: msg.envelope.recipients.map((r) => r.address),
      size: msg.size,
      receivedAt: msg.envelope.arrival.receivedAt,
      state: msg.held ? 'hold' : waiting ? 'deferred' : 'active',
      envid: msg.envelope.mailParams.envid,
      ret: msg.envelope.mailParams.ret,
      delayWarned: msg.delayWarned,
      recipientStates: msg.recipients.map(toStored),
    };
  }
}

/**
 * Copies the previous run filed but whose marks did not become durable before it died (the
 * marks ride along with the spool's next durable write): the local courier looks for them by queue
 * id, once per mailbox, for the unmarked local mailboxes of unfinished recipients only.
 */
async function earlierCopies(
  opts: QueueManagerOptions,
  recovered: readonly RecoveredMessage[],
  recipients: ReadonlyMap<QueueId, readonly EnvelopeRecipient[]>,
): Promise<Map<QueueId, string[]>> {
  if (!opts.local.findEarlierCopies) return new Map();
  const unmarked = new Map<QueueId, string[]>();
  for (const m of recovered) {
    const mailboxes = (recipients.get(m.queueId) ?? [])
      .filter((r) => !m.delivered.has(finishedMark(r.address)))
      .flatMap((r) => r.mailboxes)
      .filter((mailbox) => !m.delivered.has(mailbox));
    if (mailboxes.length > 0) unmarked.set(m.queueId, [...new Set(mailboxes)]);
  }
  if (unmarked.size === 0) return new Map();
  const found = await opts.local.findEarlierCopies(unmarked);
  const copies = [...found.values()].reduce((n, list) => n + list.length, 0);
  if (copies > 0) opts.logger.info({ messages: found.size, copies }, 'queue: copies filed before the restart count as delivered');
  return found;
}

/** One recipient's attempt in the metrics; a delivery also records how long it took since the 250. */
function countDeliveryAttempt(destination: 'local' | 'remote', status: string, receivedAt: number): void {
  deliveryAttempts.inc({ destination, status });
  if (status === 'delivered') deliveryLatency.observe({ destination }, Math.max(0, Date.now() - receivedAt) / 1000);
}

/** Whether `done` resolves within `ms`. */
async function settlesWithin(done: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([done.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
