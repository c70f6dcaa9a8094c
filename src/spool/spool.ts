// The spool: where a message is made durable before we answer 250 (RFC 5321 6.1: once we accept
// responsibility for a message we must not lose it).
//
// Append-only segment files with group commit: records from all concurrent accepts are written
// with one writev, durable when it returns, then every one of them is acknowledged; records that
// arrive meanwhile form the next batch. So the cost of durability is shared, and the rate grows
// with concurrency instead of being capped at one message per sync.
//
// Segments are opened with O_DSYNC: each writev is also the fdatasync, in one trip to libuv's
// thread pool instead of two (the 250 waits for that trip). The same bytes reach the disk as with
// writev and then fdatasync (open(2): O_DSYNC writes complete as if each were followed by
// fdatasync), so a record acknowledged is durable either way.
//
// Each segment is zero-filled ahead of the records, up to 4 MiB at a time, off the path of any
// batch. A record then overwrites blocks that are already allocated inside the file's size, so its
// O_DSYNC write needs the data on disk and a cache flush, but no update of the file's size or
// extents: on a journaling file system (ext4 as Debian makes it) a durable append waits for a
// journal commit, which every other fsync on the machine (the Maildir copies, a sink beside us)
// makes longer; only the fills pay for one now. Recovery takes the zeros for the end of the
// segment. (PostgreSQL zero-fills its WAL segments for the same reason.)
//
// Segments are deleted oldest first, once none of their messages is unfinished. Oldest first
// matters: a done record may sit in a later segment than its message, and deleting that later
// segment while the message's segment survives would bring the message back after a restart.
// Messages that stay long (deferred) would then pin old segments, so compaction copies them into
// the current segment and lets the old one go.

import { constants, open, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Envelope, QueueId } from '../mail/envelope.js';
import { spoolBatchSize, spoolSyncLatency } from '../metrics/metrics.js';
import { fsyncDirectory } from './dir-sync.js';
import {
  decodeMessagePayload,
  decodeRecord,
  encodeDeliveredPayload,
  encodeMessagePayload,
  encodeRecord,
  encodeSegmentHeader,
} from './spool-record.js';
import { recoverSpool, segmentFileName } from './spool-recovery.js';
import { unwritten } from '../util/unwritten.js';

export interface SpoolOptions {
  /** The spool directory, e.g. <data_dir>/spool; created if missing. */
  readonly dir: string;
  readonly logger: Logger;
  /** Start a new segment once the current one is this big. */
  readonly maxSegmentBytes?: number;
  /** How often to look for old segments held only by lingering messages; 0 turns it off. */
  readonly compactIntervalMs?: number;
  /** Only compact segments closed at least this long ago (their deliveries are long over). */
  readonly compactMinAgeMs?: number;
  /** How long done and delivered records wait for a batch to carry them (HOLD_RECORDS_MS). */
  readonly holdRecordsMs?: number;
  /** The most a segment is zero-filled ahead of its records in one write (PREFILL_BYTES); 0: never. */
  readonly prefillBytes?: number;
}

/** A message found at startup that still has work to do. */
export interface SpooledMessage {
  readonly queueId: QueueId;
  readonly envelope: Envelope;
  /** Size of the spooled message in octets. */
  readonly size: number;
  /** Mailboxes that already have their copy. */
  readonly delivered: ReadonlySet<string>;
}

export interface SpoolStats {
  /** Message records made durable. */
  appended: number;
  /** Batches written (each one O_DSYNC writev, sometimes more after a short write). */
  batches: number;
  /** Durable writes to segments. */
  syncs: number;
  segmentsCreated: number;
  segmentsDeleted: number;
  /** Messages copied forward by compaction. */
  relocated: number;
}

const DEFAULT_MAX_SEGMENT = 64 * 1024 * 1024;
/**
 * A new segment is zero-filled FIRST_PREFILL_BYTES ahead; each later fill is twice the one before,
 * up to PREFILL_BYTES, and starts when less than half of the one before is left ahead. So a spool
 * that takes a few messages (a test, a quiet server) writes little, and a busy one fills in big
 * writes well before its records get there.
 */
const PREFILL_BYTES = 4 * 1024 * 1024;
const FIRST_PREFILL_BYTES = 256 * 1024;
/**
 * No fills while batches are this big on average: a fill writes the bytes the records will write
 * again, and the journal commit it saves each batch is a fixed cost, which a batch of large
 * messages outweighs (measured with 100 KiB messages: the fills only added to the pool's work).
 */
const FILL_ONLY_BELOW_BATCH_BYTES = 64 * 1024;
const DONE_RETRY_MS = 1000;
/**
 * How long done and delivered records may wait in memory for a message's batch to carry them.
 * Held records die with the process, and a lost mark means a delivery made again after a
 * restart (local delivery recognizes its earlier copy, LMTP and relaying cannot), so the wait
 * is short: under load a batch comes along well within it; idle, they get a write of their own.
 */
const HOLD_RECORDS_MS = 20;

interface Segment {
  readonly number: number;
  readonly path: string;
  readonly salt: number;
  size: number;
  /** The end of the zero-filled space: records written below it need no journal commit. */
  zeroedTo: number;
  /** The size of the last zero-fill; 0 once one failed (a full disk, say): no more are tried. */
  lastFill: number;
  /** Message records in this segment not yet superseded by a durable done or a durable copy. */
  unfinished: number;
  closedAt: number | undefined;
}

/** Where the live copy of a message record is. */
interface Location {
  readonly segment: Segment;
  readonly offset: number;
  readonly size: number;
  readonly delivered: string[];
}

type Pending =
  | { kind: 'message'; queueId: QueueId; payload: Buffer[]; resolve: () => void; reject: (e: unknown) => void }
  | { kind: 'done'; queueId: QueueId }
  | { kind: 'delivered'; queueId: QueueId; mailboxes: readonly string[] }
  | { kind: 'relocate'; queueId: QueueId; from: Location; payload: Buffer; resolve: () => void; reject: (e: unknown) => void }
  | { kind: 'barrier'; resolve: () => void; reject: (e: unknown) => void };

/** What one batch changed, to keep on success or take back on failure. */
interface BatchEffects {
  readonly commit: (() => void)[];
  readonly undo: (() => void)[];
}

export class Spool {
  readonly stats: SpoolStats = { appended: 0, batches: 0, syncs: 0, segmentsCreated: 0, segmentsDeleted: 0, relocated: 0 };
  private readonly live = new Map<QueueId, Location>();
  private pending: Pending[] = [];
  private writing = false;
  private scheduled = false;
  private closed = false;
  private rotateBeforeNextBatch = false;
  /** Done and delivered records not written yet: they wait for a batch a message needs anyway. */
  private held: Pending[] = [];
  private holdTimer: NodeJS.Timeout | undefined;
  private compactTimer: NodeJS.Timeout | undefined;
  /** The zero-fill in flight in the current segment, from its zeroedTo on; at most one. */
  private filling: Promise<void> | undefined;
  /** Bytes per batch written, a moving average over about the last 16 batches. */
  private batchBytes = 0;

  private constructor(
    private readonly opts: SpoolOptions,
    private readonly segments: Segment[],
    private current: Segment,
    private file: FileHandle,
  ) {}

  /** Opens the spool, recovering what a previous run left; always starts a fresh segment. */
  static async open(opts: SpoolOptions): Promise<{ spool: Spool; recovered: SpooledMessage[] }> {
    await mkdir(opts.dir, { recursive: true });
    const contents = await recoverSpool(opts.dir, opts.logger);
    const segments: Segment[] = contents.segments.map((s) => ({ ...s, zeroedTo: s.size, lastFill: 0, unfinished: 0, closedAt: 0 }));
    const byNumber = new Map(segments.map((s) => [s.number, s]));
    const last = segments.at(-1)?.number ?? 0;
    const created = await createSegment(opts.dir, last + 1, firstPrefillOf(opts));
    segments.push(created.segment);
    const spool = new Spool(opts, segments, created.segment, created.file);
    spool.stats.segmentsCreated++;
    const recovered: SpooledMessage[] = [];
    for (const m of contents.messages.values()) {
      const segment = byNumber.get(m.segment)!;
      segment.unfinished++;
      spool.live.set(m.queueId, { segment, offset: m.offset, size: m.size, delivered: [...m.delivered] });
      recovered.push({ queueId: m.queueId, envelope: m.envelope, size: m.messageSize, delivered: m.delivered });
    }
    await spool.deleteFinishedSegments();
    spool.startCompactTimer();
    return { spool, recovered };
  }

  /** Resolves once the message and its envelope are on disk (written with O_DSYNC). */
  append(queueId: QueueId, envelope: Envelope, message: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'message', queueId, payload: encodeMessagePayload(envelope, message), resolve, reject });
    });
  }

  /**
   * Marks a message finished. Nobody waits: if the done record is lost in a crash the message is
   * delivered again, which is a duplicate, never a loss.
   */
  markDone(queueId: QueueId): void {
    this.enqueue({ kind: 'done', queueId });
  }

  /** Records that these mailboxes have their copy, so a restart does not deliver to them again. */
  markDelivered(queueId: QueueId, mailboxes: readonly string[]): void {
    if (mailboxes.length > 0) this.enqueue({ kind: 'delivered', queueId, mailboxes });
  }

  /** Resolves once everything handed to the spool so far is durable. */
  flush(): Promise<void> {
    if (this.pending.length === 0 && !this.writing && this.held.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.enqueue({ kind: 'barrier', resolve, reject }));
  }

  /** Reads a live message back (after a restart, or for a retry). */
  async read(queueId: QueueId): Promise<{ envelope: Envelope; message: Buffer }> {
    // Compaction may move the record (and delete its old segment) while we read: look again.
    for (let attempt = 0; ; attempt++) {
      const at = this.live.get(queueId);
      if (!at) throw new Error(`queue id ${queueId} is not in the spool`);
      try {
        return decodeMessagePayload(await this.readPayload(at));
      } catch (err) {
        if (attempt >= 2 || this.live.get(queueId) === at) throw err;
      }
    }
  }

  has(queueId: QueueId): boolean {
    return this.live.has(queueId);
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /**
   * Copies the live messages out of closed segments older than `minAgeMs` into the current one,
   * so those segments can be deleted. Returns how many messages were copied.
   */
  async compact(minAgeMs: number = this.opts.compactMinAgeMs ?? 5 * 60_000): Promise<number> {
    const now = Date.now();
    const old = new Set(this.segments.filter((s) => s !== this.current && s.unfinished > 0 && (s.closedAt ?? now) <= now - minAgeMs));
    if (old.size === 0) return 0;
    let copied = 0;
    let inBatch: Promise<void>[] = [];
    for (const [queueId, from] of [...this.live]) {
      if (!old.has(from.segment) || this.closed) continue;
      const payload = await this.readPayload(from);
      inBatch.push(new Promise<void>((resolve, reject) => this.enqueue({ kind: 'relocate', queueId, from, payload, resolve, reject })));
      copied++;
      // Bounded, so that compacting a big segment never holds all of it in memory.
      if (inBatch.length >= 64) {
        await Promise.all(inBatch);
        inBatch = [];
      }
    }
    await Promise.all(inBatch);
    return copied;
  }

  /** Writes what is pending and closes the segment; the spool takes nothing more. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.compactTimer) clearInterval(this.compactTimer);
    if (this.holdTimer) clearTimeout(this.holdTimer);
    try {
      // The last batch: nothing can be added after it, so the file is idle once it resolves.
      await new Promise<void>((resolve, reject) => this.enqueue({ kind: 'barrier', resolve, reject }, true));
    } finally {
      await this.filling;
      await closeSegmentFile(this.file, this.current);
    }
  }

  private enqueue(p: Pending, evenIfClosed = false): void {
    if (this.closed && !evenIfClosed) {
      if ('reject' in p) p.reject(new Error('spool is closed'));
      return;
    }
    this.pending.push(p);
    if (this.writing || this.scheduled) return;
    this.scheduled = true;
    // Wait for the rest of this turn of the event loop: every session whose data arrived in the
    // same poll phase joins the first batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        await this.writeBatch(batch);
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const full = this.rotateBeforeNextBatch || this.current.size >= (this.opts.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT);
    try {
      if (full && batch.some((p) => p.kind !== 'barrier')) {
        await this.rotate();
      }
    } catch (err) {
      this.opts.logger.error({ err }, 'spool: cannot start a new segment');
      this.fail(batch, err);
      return;
    }
    // Done and delivered records only spare a restart from delivering again: nobody waits for
    // them, so they wait in memory and go with the next write a message needs anyway (or the
    // held ones' own, below) instead of paying their own. One durable write per delivered message would
    // otherwise compete on this file with the accepts that clients are waiting for.
    const mustSync = batch.some((p) => p.kind === 'message' || p.kind === 'relocate' || p.kind === 'barrier');
    if (!mustSync) {
      this.held.push(...batch);
      this.writeHeldSoon();
      return;
    }
    const records = this.held.length > 0 ? [...this.held.splice(0), ...batch] : batch;
    const segment = this.current;
    const start = segment.size;
    const buffers: Buffer[] = [];
    const effects: BatchEffects = { commit: [], undo: [] };
    let offset = start;
    const add = (parts: Buffer[]): { offset: number; size: number } => {
      const size = parts.reduce((n, b) => n + b.length, 0);
      buffers.push(...parts);
      const at = { offset, size };
      offset += size;
      return at;
    };
    for (const p of records) this.place(p, segment, add, effects);
    if (buffers.length > 0) {
      // The fill in flight writes zeros from zeroedTo on: a batch reaching past it waits.
      if (this.filling !== undefined && offset > segment.zeroedTo) await this.filling;
      try {
        const started = performance.now();
        await writeAll(this.file, buffers, start);
        spoolSyncLatency.observe((performance.now() - started) / 1000);
        spoolBatchSize.observe(records.length);
        segment.size = offset;
        this.stats.syncs++;
        this.stats.batches++;
        this.batchBytes += (offset - start - this.batchBytes) / 16;
        this.fillAhead(segment);
      } catch (err) {
        this.opts.logger.error({ err, segment: segment.path }, 'spool: write failed');
        for (const undo of effects.undo.reverse()) undo();
        // After a failed write or sync the kernel may have dropped the dirty pages: trust nothing
        // more in this file, cut what we wrote and continue in a new segment.
        await this.filling;
        await this.file.truncate(start).catch(() => undefined);
        segment.size = start;
        segment.zeroedTo = start;
        this.rotateBeforeNextBatch = true;
        this.fail(records, err);
        return;
      }
    }
    for (const commit of effects.commit) commit();
    for (const p of records) if ('resolve' in p && p.kind !== 'barrier') p.resolve();
    await this.deleteFinishedSegments();
    // A flush also waits for the segment deletions its done records allowed.
    for (const p of records) if (p.kind === 'barrier') p.resolve();
  }

  /** Lays one pending record out in the batch and notes its effect on the live map. */
  private place(
    p: Pending,
    segment: Segment,
    add: (parts: Buffer[]) => { offset: number; size: number },
    effects: BatchEffects,
  ): void {
    switch (p.kind) {
      case 'message': {
        const at = add(encodeRecord(segment.salt, 'message', p.queueId, p.payload));
        const location: Location = { segment, ...at, delivered: [] };
        this.live.set(p.queueId, location);
        segment.unfinished++;
        effects.commit.push(() => this.stats.appended++);
        effects.undo.push(() => {
          if (this.live.get(p.queueId) === location) this.live.delete(p.queueId);
          segment.unfinished--;
        });
        return;
      }
      case 'done': {
        const location = this.live.get(p.queueId);
        if (!location) return;
        add(encodeRecord(segment.salt, 'done', p.queueId, []));
        this.live.delete(p.queueId);
        effects.commit.push(() => location.segment.unfinished--);
        effects.undo.push(() => this.live.set(p.queueId, location));
        return;
      }
      case 'delivered': {
        const location = this.live.get(p.queueId);
        if (!location) return;
        add(encodeRecord(segment.salt, 'delivered', p.queueId, encodeDeliveredPayload(p.mailboxes)));
        // The mailbox copies are durable whether or not this record is, so this needs no undo.
        location.delivered.push(...p.mailboxes);
        return;
      }
      case 'relocate': {
        // Only the copy still current at write time moves: a done record placed earlier wins.
        if (this.live.get(p.queueId) !== p.from) return;
        const at = add(encodeRecord(segment.salt, 'message', p.queueId, [p.payload]));
        if (p.from.delivered.length > 0) {
          add(encodeRecord(segment.salt, 'delivered', p.queueId, encodeDeliveredPayload(p.from.delivered)));
        }
        const location: Location = { segment, ...at, delivered: p.from.delivered };
        this.live.set(p.queueId, location);
        segment.unfinished++;
        effects.commit.push(() => {
          p.from.segment.unfinished--;
          this.stats.relocated++;
        });
        effects.undo.push(() => {
          if (this.live.get(p.queueId) === location) this.live.set(p.queueId, p.from);
          segment.unfinished--;
        });
        return;
      }
      case 'barrier':
        return;
    }
  }

  private fail(batch: Pending[], err: unknown): void {
    const retry: Pending[] = [];
    for (const p of batch) {
      if ('reject' in p) p.reject(err);
      else retry.push(p);
    }
    // Done and delivered records have no caller to tell; try them again a little later.
    if (retry.length > 0) {
      setTimeout(() => {
        if (!this.closed) for (const p of retry) this.enqueue(p);
      }, DONE_RETRY_MS).unref();
    }
  }

  /** Writes held done and delivered records within holdRecordsMs if no batch has carried them. */
  private writeHeldSoon(): void {
    if (this.holdTimer !== undefined) return;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      if (this.held.length > 0 && !this.closed) this.enqueue({ kind: 'barrier', resolve: () => undefined, reject: () => undefined });
    }, this.opts.holdRecordsMs ?? HOLD_RECORDS_MS);
    this.holdTimer.unref();
  }

  /**
   * Zero-fills the next stretch of the current segment in the background once less than half of
   * the filled space is left ahead of the records. A failed fill costs only speed: records then
   * append, and each of their writes waits for the journal again.
   */
  private fillAhead(segment: Segment): void {
    const most = prefillOf(this.opts);
    const max = this.opts.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT;
    if (this.filling !== undefined || most === 0 || segment.lastFill === 0 || segment !== this.current) return;
    if (this.batchBytes >= FILL_ONLY_BELOW_BATCH_BYTES) return;
    if (segment.zeroedTo - segment.size >= segment.lastFill / 2 || segment.zeroedTo >= max) return;
    const bytes = Math.min(most, Math.max(segment.lastFill * 2, FIRST_PREFILL_BYTES));
    const from = Math.max(segment.zeroedTo, segment.size);
    segment.lastFill = bytes;
    this.filling = writeAll(this.file, zeros(bytes), from)
      .then(
        () => {
          segment.zeroedTo = from + bytes;
        },
        (err: unknown) => {
          segment.lastFill = 0;
          this.opts.logger.warn({ err, segment: segment.path }, 'spool: cannot zero-fill ahead; appending to this segment');
        },
      )
      .finally(() => {
        this.filling = undefined;
      });
  }

  private async rotate(): Promise<void> {
    await this.filling;
    const created = await createSegment(this.opts.dir, this.current.number + 1, firstPrefillOf(this.opts));
    const previous = this.file;
    const closing = this.current;
    this.current.closedAt = Date.now();
    this.current = created.segment;
    this.file = created.file;
    this.segments.push(created.segment);
    this.rotateBeforeNextBatch = false;
    this.stats.segmentsCreated++;
    await closeSegmentFile(previous, closing).catch(() => undefined);
  }

  /** Deletes finished segments, oldest first (see the top of this file for why the order). */
  private async deleteFinishedSegments(): Promise<void> {
    let deleted = false;
    for (;;) {
      const segment = this.segments[0];
      if (segment === undefined || this.segments.length === 1 || segment === this.current || segment.unfinished !== 0) break;
      this.segments.shift();
      await unlink(segment.path).catch((err: unknown) => this.opts.logger.error({ err, path: segment.path }, 'spool: cannot delete segment'));
      this.stats.segmentsDeleted++;
      deleted = true;
    }
    // Make the deletions durable in order, so no older segment reappears after a crash
    // without the later done records that finished its messages.
    if (deleted) await fsyncDirectory(this.opts.dir).catch(() => undefined);
  }

  private async readPayload(at: Location): Promise<Buffer> {
    const file = await open(at.segment.path, 'r');
    try {
      const buf = Buffer.alloc(at.size);
      const { bytesRead } = await file.read(buf, 0, at.size, at.offset);
      const result = decodeRecord(buf.subarray(0, bytesRead), 0, at.segment.salt);
      if (!result.ok) throw new Error(`spool record at ${at.segment.path}:${at.offset} is unreadable (${result.reason})`);
      return result.record.payload;
    } finally {
      await file.close();
    }
  }

  private startCompactTimer(): void {
    const every = this.opts.compactIntervalMs ?? 60_000;
    if (every <= 0) return;
    this.compactTimer = setInterval(() => {
      this.compact().catch((err: unknown) => this.opts.logger.error({ err }, 'spool: compaction failed'));
    }, every);
    this.compactTimer.unref();
  }
}

function prefillOf(opts: SpoolOptions): number {
  return opts.prefillBytes ?? PREFILL_BYTES;
}

/** The first zero-fill of a new segment. */
function firstPrefillOf(opts: SpoolOptions): number {
  return Math.min(prefillOf(opts), FIRST_PREFILL_BYTES);
}

let zeroChunk: Buffer | undefined;

/** `bytes` of zeros as buffers to write: one shared chunk, repeated. */
function zeros(bytes: number): Buffer[] {
  const chunk = (zeroChunk ??= Buffer.alloc(1024 * 1024));
  const out: Buffer[] = [];
  for (let left = bytes; left > 0; left -= chunk.length) out.push(left >= chunk.length ? chunk : chunk.subarray(0, left));
  return out;
}

/** Creates a segment: its header and the first `prefill` bytes of zeros, durable, and its name too. */
async function createSegment(dir: string, number: number, prefill: number): Promise<{ segment: Segment; file: FileHandle }> {
  const path = join(dir, segmentFileName(number));
  const salt = randomInt(0, 2 ** 32 - 1);
  const file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC, 0o600);
  try {
    const header = encodeSegmentHeader(salt);
    await writeAll(file, [header, ...zeros(prefill)], 0);
    // The new name must be durable too, or an acknowledged record could vanish with its file.
    await fsyncDirectory(dir);
    const size = header.length;
    return { segment: { number, path, salt, size, zeroedTo: size + prefill, lastFill: prefill, unfinished: 0, closedAt: undefined }, file };
  } catch (err) {
    await file.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Closes a segment no longer written, without the zeros after its records: recovery would take
 * them for the end anyway, this only gives the space back. Nothing waits for the truncation to be
 * durable for the same reason.
 */
async function closeSegmentFile(file: FileHandle, segment: Segment): Promise<void> {
  try {
    if (segment.zeroedTo > segment.size) await file.truncate(segment.size);
  } catch {
    // Only space: the zeros stay until the segment is deleted.
  } finally {
    await file.close();
  }
}

/** writev until every byte is written (a writev may write less than asked). */
async function writeAll(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let rest = buffers;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await file.writev(rest, at);
    if (bytesWritten === 0) throw new Error('spool: writev wrote nothing');
    at += bytesWritten;
    rest = unwritten(rest, bytesWritten);
  }
}
