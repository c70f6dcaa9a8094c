// The courier for local mailboxes: one attempt writes a copy of the message into each Maildir its
// recipients resolved to at RCPT time. Copies go out in parallel; each mailbox gets at most one,
// even when two recipients (an alias and its target, say) lead to it, and none that already got
// one in an earlier attempt (the job's alreadyDelivered: the spool's marks). After a crash the
// marks may be behind the Maildirs: findEarlierCopies tells the queue which copies exist already
// (each copy's name carries its queue id, see maildir.ts).

import type { Logger } from 'pino';
import type { QueueId } from '../../mail/envelope.js';
import { reply } from '../../mail/reply.js';
import { JUNK_FOLDER, type Courier, type CourierJob, type DeliveryOutcome } from '../../queue/courier.js';
import type { Maildirs } from './maildir.js';

const DELIVERED = reply(250, '2.0.0', 'Delivered to the mailbox');
// RFC 3463 4.3.0: a problem on our side, to be retried.
const UNAVAILABLE = reply(451, '4.3.0', 'Mailbox temporarily unavailable');

export class MaildirCourier implements Courier {
  constructor(
    private readonly maildirs: Maildirs,
    /** Named as the "remote host" of local deliveries, in logs and DSNs. */
    private readonly hostname: string,
    private readonly logger: Logger,
  ) {}

  async deliver(job: CourierJob): Promise<DeliveryOutcome[]> {
    const todo = [...new Set(job.recipients.flatMap((r) => r.mailboxes))].filter((m) => !job.alreadyDelivered.has(m));
    const written = new Set<string>();
    // DMARC quarantine (RFC 7489 section 6.3): into the Junk folder, where the user can still find it.
    const folder = job.quarantine ? JUNK_FOLDER : undefined;
    const results = await Promise.allSettled(todo.map((m) => this.maildirs.deliver(m, job.sender, job.message, { queueId: job.queueId, folder })));
    results.forEach((result, i) => {
      const mailbox = todo[i] ?? '';
      if (result.status === 'fulfilled') written.add(mailbox);
      else this.logger.error({ err: result.reason, queue_id: job.queueId, mailbox }, 'delivery to mailbox failed');
    });
    return job.recipients.map((r): DeliveryOutcome => {
      const mailboxes = r.mailboxes.filter((m) => written.has(m));
      const done = r.mailboxes.every((m) => written.has(m) || job.alreadyDelivered.has(m));
      return done
        ? { kind: 'delivered', reply: DELIVERED, remoteHost: this.hostname, mailboxes }
        : { kind: 'deferred', reply: UNAVAILABLE, remoteHost: this.hostname, reason: 'the mailbox could not be written on this server', mailboxes };
    });
  }

  async findEarlierCopies(unmarked: ReadonlyMap<QueueId, readonly string[]>): Promise<Map<QueueId, string[]>> {
    const byMailbox = new Map<string, Set<QueueId>>();
    for (const [queueId, mailboxes] of unmarked) {
      for (const m of mailboxes) {
        const ids = byMailbox.get(m) ?? new Set<QueueId>();
        ids.add(queueId);
        byMailbox.set(m, ids);
      }
    }
    const found = new Map<QueueId, string[]>();
    // One mailbox at a time: this runs once at startup, and a Maildir can be big.
    for (const [mailbox, ids] of byMailbox) {
      let here: Set<QueueId>;
      try {
        here = await this.maildirs.earlierCopies(mailbox, ids);
      } catch (err) {
        // Not knowing means delivering again: a possible duplicate, never a loss.
        this.logger.warn({ err, mailbox }, 'cannot look for copies filed before the restart; the messages are delivered again');
        continue;
      }
      for (const id of here) found.set(id, [...(found.get(id) ?? []), mailbox]);
    }
    return found;
  }
}
