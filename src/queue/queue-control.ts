// How `postern queue ...` reaches the running server. The CLI is another process; the server is
// the only writer of queue state (two writers would race each other's updates), so the CLI files
// a request in the store and the server polls for requests about once a second, carries them out
// and deletes them. A request filed while the server is down waits for the next start, and is
// carried out before any delivery begins. Polling costs one indexed SELECT per second; a signal
// would save that but needs the server's pid and the right to signal it, which the CLI run by
// another user may lack.

import type { Logger } from 'pino';
import type { QueueRequest, QueueStore } from '../store/store.js';

export interface QueueControlOptions {
  readonly store: QueueStore;
  readonly logger: Logger;
  /** Carries out one request; must not throw for an unknown queue id (the message may be gone). */
  readonly apply: (request: QueueRequest) => Promise<void>;
  /** Runs after a batch, before the requests are marked done (make the results visible). */
  readonly afterBatch: () => Promise<void>;
  /** 0 turns polling off (poll() can still be called). */
  readonly intervalMs: number;
}

export class QueueControl {
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(private readonly opts: QueueControlOptions) {}

  start(): void {
    if (this.opts.intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      this.poll().catch((err: unknown) => this.opts.logger.error({ err }, 'queue control: cannot read requests'));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling?.catch(() => undefined);
  }

  /** Carries out every pending request once (never two polls at a time). */
  poll(): Promise<void> {
    this.polling ??= this.run().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async run(): Promise<void> {
    const requests = await this.opts.store.queueRequests();
    if (requests.length === 0) return;
    for (const request of requests) {
      this.opts.logger.info({ request: request.action, queue_id: request.queueId }, 'queue: operator request');
      await this.opts.apply(request);
    }
    await this.opts.afterBatch();
    await this.opts.store.queueRequestsDone(requests.map((r) => r.id));
  }
}
