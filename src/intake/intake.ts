// What happens to a message between the final dot and the 250, like Postfix's cleanup: refuse a
// mail loop, give the message its queue id and our Received header, and append it to the spool.
// Once admit() resolves, the message is on disk and fsync'd (the spool's group commit): only then
// may the session say 250, and from then on a crash loses nothing. Scheduling the delivery is the
// queue's business, not this one's.

import type { Logger } from 'pino';
import type { Envelope, QueueId } from '../mail/envelope.js';
import type { QueueIdGenerator } from '../mail/queue-id.js';
import { SmtpError } from '../mail/reply.js';
import type { Spool } from '../spool/spool.js';
import { countReceivedHeaders } from './loop-check.js';
import { receivedHeader } from './received-header.js';
import { prepend } from '../util/headroom.js';

export interface IntakeOptions {
  readonly spool: Spool;
  readonly queueIds: QueueIdGenerator;
  /** Our name in the Received header. */
  readonly hostname: string;
  /** [queue] max_received_headers: more, and the message is refused as a loop. */
  readonly maxReceivedHeaders: number;
  readonly logger: Logger;
}

/** A message as the spool now holds it: our Received header first, then the client's bytes. */
export interface SpooledMessage {
  readonly queueId: QueueId;
  readonly envelope: Envelope;
  readonly message: Buffer;
}

export interface AdmitOptions {
  /** Messages from clients are checked for loops; notices we generate are not. */
  readonly loopCheck: boolean;
  /** Name the authenticated account in the Received header ([submission] received_auth). */
  readonly recordAuthUser?: boolean | undefined;
}

export class Intake {
  constructor(private readonly opts: IntakeOptions) {}

  /** Resolves once the message is durable; throws an SmtpError the client should see. */
  async admit(envelope: Envelope, message: Buffer, options: AdmitOptions): Promise<SpooledMessage> {
    if (options.loopCheck) this.refuseLoop(envelope, message);
    const queueId = this.opts.queueIds.next();
    const received = receivedHeader(envelope, { hostname: this.opts.hostname, queueId, recordAuthUser: options.recordAuthUser });
    const spooled = prepend(Buffer.from(received, 'utf8'), message);
    try {
      await this.opts.spool.append(queueId, envelope, spooled);
    } catch (err) {
      this.opts.logger.error({ err, queue_id: queueId }, 'intake: cannot spool message');
      // RFC 3463 4.3.1: mail system full; the client keeps the message and retries later.
      if (isDiskFull(err)) throw new SmtpError(452, '4.3.1', 'Insufficient system storage, try again later', { cause: err });
      throw err;
    }
    return { queueId, envelope, message: spooled };
  }

  /** RFC 5321 6.3: a message that has passed too many hops is going round in circles. */
  private refuseLoop(envelope: Envelope, message: Buffer): void {
    const hops = countReceivedHeaders(message);
    if (hops <= this.opts.maxReceivedHeaders) return;
    this.opts.logger.warn({ sender: envelope.sender, received_headers: hops }, 'message refused as a mail loop');
    // RFC 3463 5.4.6: routing loop detected.
    throw new SmtpError(554, '5.4.6', 'Too many Received headers: mail loop?');
  }
}

function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
