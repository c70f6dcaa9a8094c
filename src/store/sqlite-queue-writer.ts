// The queue table's writes on a thread of their own, with a second connection to the same file.
//
// At a hundred sessions these writes (a row per accepted message and one per recipient, removed
// again once delivered) were a tenth of the event loop's time, while the machine's other core had
// a quarter of its time idle: the event loop, not the machine, set the pace of accepting. The
// table is only a view of the spool for operators (queue-bookkeeping.ts), so nothing waits for it
// but the next batch. Reads stay on the main connection; WAL lets them see each committed batch.
//
// The thread handles one request at a time, in the order they were sent, so a removal sent before
// an insert is written before it, as on one connection. If the thread dies, the calls it had are
// rejected and later ones run on the main connection (`fallback`): slower, never lost.

import { Worker } from 'node:worker_threads';
import type { QueueEntry } from './store.js';

export type QueueWriteRequest = { readonly id: number; readonly op: 'insert'; readonly entries: readonly QueueEntry[] } | { readonly id: number; readonly op: 'remove'; readonly queueIds: readonly string[] };
export type QueueWriteReply = { readonly id: number; readonly error?: string };

/** What runs the writes when the thread cannot: the main connection's own queue tables. */
export interface QueueWriteFallback {
  insert(entries: readonly QueueEntry[]): void;
  remove(queueIds: readonly string[]): void;
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

export class SqliteQueueWriter {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set once the thread has exited or failed: every call from then on uses the fallback. */
  private gone: Error | undefined;
  private readonly exited: Promise<void>;
  /** close() waiting for the calls in flight. */
  private drained: (() => void) | undefined;

  constructor(
    path: string,
    private readonly fallback: QueueWriteFallback,
  ) {
    this.worker = new Worker(new URL('./sqlite-queue-writer-thread.js', import.meta.url), { workerData: { path } });
    // Idle, the thread must not keep the process alive; a call in flight does (see call()).
    this.worker.unref();
    this.worker.on('message', (reply: QueueWriteReply) => this.settle(reply));
    this.worker.on('error', (err: Error) => this.fail(err));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => {
      this.fail(new Error('the queue table writer thread exited'));
      resolve();
    }));
  }

  insert(entries: readonly QueueEntry[]): Promise<void> {
    if (this.gone) return runNow(() => this.fallback.insert(entries));
    return this.call({ id: this.nextId++, op: 'insert', entries });
  }

  remove(queueIds: readonly string[]): Promise<void> {
    if (this.gone) return runNow(() => this.fallback.remove(queueIds));
    return this.call({ id: this.nextId++, op: 'remove', queueIds });
  }

  /** Lets the writes already sent finish, then ends the thread. */
  async close(): Promise<void> {
    if (!this.gone) {
      if (this.pending.size > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      this.gone ??= new Error('the queue table writer is closed');
      await this.worker.terminate();
    }
    await this.exited;
  }

  private call(request: QueueWriteRequest): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(request.id, { resolve, reject });
      this.worker.postMessage(request);
    });
  }

  private settle(reply: QueueWriteReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.error === undefined) p.resolve();
    else p.reject(new Error(reply.error));
    if (this.pending.size === 0) this.idle();
  }

  private fail(err: Error): void {
    this.gone ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.idle();
  }

  private idle(): void {
    this.worker.unref();
    this.drained?.();
    this.drained = undefined;
  }
}

function runNow(write: () => void): Promise<void> {
  try {
    write();
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
