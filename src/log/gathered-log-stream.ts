// The JSON log's lines, gathered for up to GATHER_MS and handed to the file stream (pino's
// SonicBoom) in one write.
//
// Line by line, the log was 8.6 % of the event loop at a hundred sessions and 14.7 % of a
// session worker's: each line that found SonicBoom idle cost a trip to libuv's pool (a write(2)
// of one line, and the pool thread woken for it), and each line that found a write in flight
// made SonicBoom measure the byte length of all it still held (sonic-boom 4.2, write()), which
// flattens a string that grows by a line each time. Gathered, the lines of many messages cost one
// of each.
//
// A line waits at most GATHER_MS. At exit, the lines still here are written synchronously after
// SonicBoom's own (pino flushes it synchronously on 'exit' too), so the last lines before a
// process.exit() or an uncaught exception are in the file; a SIGKILL can take the last GATHER_MS
// of lines with it, never a message (a message's 250 never waits for its line).

import { writeSync } from 'node:fs';

/** How long a line may wait for others to share its write. */
export const GATHER_MS = 10;

/** Retries of a synchronous write that found a non-blocking pipe full (EAGAIN), at exit. */
const EXIT_WRITE_ATTEMPTS = 1000;

/** What this needs of SonicBoom (whose types leave out the fd it has once open). */
export interface LineSink {
  readonly fd?: number;
  write(data: string): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/** Every stream, flushed at exit; weakly held, as pino holds its own, so a dropped logger can go. */
const live = new Set<WeakRef<GatheredLogStream>>();
const forget = new FinalizationRegistry<WeakRef<GatheredLogStream>>((ref) => live.delete(ref));
process.once('exit', () => {
  for (const ref of live) ref.deref()?.flushSync();
});

export class GatheredLogStream {
  private lines: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: LineSink,
    private readonly gatherMs = GATHER_MS,
  ) {
    const ref = new WeakRef(this);
    live.add(ref);
    forget.register(this, ref);
  }

  /** pino calls this with one complete line (its newline included). */
  write(line: string): boolean {
    this.lines.push(line);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.drain(), this.gatherMs);
      // The lines are no reason to stay alive: an ending process writes them at 'exit'.
      this.timer.unref();
    }
    return true;
  }

  /** pino's logger.flush(cb): the lines gathered so far, then SonicBoom's flush. */
  flush(cb?: (err?: Error) => void): void {
    this.drain();
    this.sink.flush(cb);
  }

  /** Everything, now: SonicBoom's buffer, then the lines gathered since. */
  flushSync(): void {
    const rest = this.take();
    try {
      this.sink.flushSync();
    } catch {
      // Not open yet, or destroyed: the gathered lines are still worth writing.
    }
    const fd = this.sink.fd ?? -1;
    if (rest !== '' && fd >= 0) writeAllSync(fd, Buffer.from(rest, 'utf8'));
  }

  private drain(): void {
    const text = this.take();
    if (text !== '') this.sink.write(text);
  }

  private take(): string {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return '';
    const text = this.lines.length === 1 ? (this.lines[0] as string) : this.lines.join('');
    this.lines = [];
    return text;
  }
}

function writeAllSync(fd: number, bytes: Buffer): void {
  let offset = 0;
  for (let attempt = 0; offset < bytes.length && attempt < EXIT_WRITE_ATTEMPTS; attempt++) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
    }
  }
}
