// The messages between the primary process and its children (src/server/workers.ts), sent over
// the IPC channel of child_process.fork with the "advanced" serialization (structured clone), so
// a connection's socket travels as a handle; and the calls a session worker makes of the queue
// owner, which go straight from one to the other over the queue channel (queue-channel.ts).

import type { Config } from '../config/schema.js';
import type { Envelope, QueueId } from '../mail/envelope.js';
import type { Reply } from '../mail/reply.js';
import type { CertificateSnapshot } from '../tls/server-certificates.js';
import type { BoundListener, ServiceKind } from './listeners.js';
import type { CountsRecords } from './shared-counts.js';

/** The queue owner keeps the queue and the per-account counts; session workers run the sessions. */
export type WorkerRole = { readonly kind: 'queue' } | { readonly kind: 'sessions'; readonly index: number };

/** What a session worker asks of the queue owner, over the queue channel (queue-channel.ts). */
export type QueueCall =
  | { readonly method: 'accept'; readonly envelope: Envelope; readonly message: Buffer; readonly recordAuthUser: boolean }
  | { readonly method: 'checkMessage'; readonly account: string }
  | { readonly method: 'checkRecipient'; readonly account: string; readonly alreadyInTransaction: number }
  | { readonly method: 'record'; readonly account: string; readonly recipients: number };

/** A call's answer: a queue id or a refusal; `failed` is an SmtpError's reply, else a local error. */
export type QueueResult =
  | { readonly ok: true; readonly queueId?: QueueId; readonly reply?: Reply | undefined }
  | { readonly ok: false; readonly failed: Reply | undefined };

export type ToWorker =
  | {
      readonly type: 'start';
      readonly role: WorkerRole;
      readonly config: Config;
      readonly certificates: readonly CertificateSnapshot[];
      readonly listeners: readonly BoundListener[];
    }
  /** The socket comes as the handle; `id` names it in 'ended'. */
  | { readonly type: 'connection'; readonly id: number; readonly kind: ServiceKind }
  | { readonly type: 'reload'; readonly config: Config; readonly certificates: readonly CertificateSnapshot[] }
  | { readonly type: 'collect'; readonly id: number }
  | { readonly type: 'metrics'; readonly id: number; readonly text: string | undefined }
  | { readonly type: 'stop' }
  /** To a session worker as it becomes ready, before any connection (shared-counts.ts). */
  | { readonly type: 'counts'; readonly records: CountsRecords }
  | AuthEvent
  | MessageCounted;

export type FromWorker =
  /** Its code is loaded and it listens: messages sent before this would be lost. */
  | { readonly type: 'loaded' }
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'ended'; readonly id: number }
  /** prom-client's getMetricsAsJSON(), the answer to 'collect'. */
  | { readonly type: 'collected'; readonly id: number; readonly metrics: unknown }
  /** A worker serving GET /metrics asks for every process's figures, summed. */
  | { readonly type: 'scrape'; readonly id: number }
  | AuthEvent
  | MessageCounted;

/** A message from `ip` that one session worker's client rates counted; the others count it too. */
export interface MessageCounted {
  readonly type: 'message-counted';
  readonly ip: string;
}

/**
 * An AUTH outcome in one session worker, passed by the primary to the others, whose AUTH
 * throttles count it too: the failures per IP and per account are the whole server's.
 */
export interface AuthEvent {
  readonly type: 'auth';
  readonly outcome: 'failure' | 'success';
  readonly ip: string;
  readonly account: string | undefined;
}
