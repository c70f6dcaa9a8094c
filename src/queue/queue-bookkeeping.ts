// Keeps the store's queue table (what `postern queue list` shows) in step with the spool.
// The spool is the truth; this table is a view of it for operators. So writes are batched and run
// off the path of the 250 reply: one store transaction per batch, not one per message, and a crash
// that loses a batch is repaired at the next start (reconcile).

import type { Logger } from 'pino';
import type { QueueEntry, QueueStore } from '../store/store.js';
import type { QueueId } from '../mail/envelope.js';

const FLUSH_DELAY_MS = 20;

export class QueueBookkeeping {
  /** Latest wanted state per id since the last flush: an entry to (re)write, or null to remove. */
  private pending = new Map<QueueId, QueueEntry | null>();
  /** Ids that have a row in the store. */
  private readonly inStore = new Set<QueueId>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** After close(): the store is about to close, and what still changes is repaired by reconcile. */
  private closed = false;

  constructor(
    private readonly store: QueueStore,
    private readonly logger: Logger,
  ) {}

  /** Makes the table match what the spool holds after a restart (live entries are rewritten whole). */
  async reconcile(live: readonly QueueEntry[]): Promise<void> {
    const wanted = new Set(live.map((e) => e.queueId));
    const rows = await this.store.queueList();
    const stale = rows.filter((r) => !wanted.has(r.queueId)).map((r) => r.queueId);
    if (stale.length > 0) await this.store.queueRemove(stale);
    if (live.length > 0) await this.store.queueInsert(live);
    for (const e of live) this.inStore.add(e.queueId);
  }

  /** Records a new entry, or a new state for an existing one. */
  put(entry: QueueEntry): void {
    if (this.closed) return;
    this.pending.set(entry.queueId, entry);
    this.schedule();
  }

  remove(queueId: QueueId): void {
    if (this.closed) return;
    this.pending.set(queueId, null);
    this.schedule();
  }

  /** Writes everything pending; safe to call at any time. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    this.flushing = this.write().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  /**
   * The last flush before the store closes. A delivery that outlived the queue's shutdown grace
   * (a peer that never answers) may still finish later; its change is not written to a closed
   * store but left to the next start's reconcile, which rebuilds the table from the spool.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch((err: unknown) => this.logger.error({ err }, 'queue bookkeeping: store update failed'));
    }, FLUSH_DELAY_MS);
    this.timer.unref();
  }

  private async write(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const removals: QueueId[] = [];
    const inserts: QueueEntry[] = [];
    for (const [queueId, entry] of batch) {
      // The store's insert replaces an existing entry; only removals need a delete.
      if (entry) inserts.push(entry);
      else if (this.inStore.has(queueId)) removals.push(queueId);
    }
    try {
      if (removals.length > 0) await this.store.queueRemove(removals);
      for (const id of removals) this.inStore.delete(id);
      if (inserts.length > 0) await this.store.queueInsert(inserts);
      for (const e of inserts) this.inStore.add(e.queueId);
    } catch (err) {
      // Put back what is not newer in the meantime; the next put or remove writes it again.
      for (const [queueId, entry] of batch) if (!this.pending.has(queueId)) this.pending.set(queueId, entry);
      throw err;
    }
  }
}
