// Small file writes done on the event loop, not in libuv's thread pool.
//
// Copying a few KiB into the page cache takes the kernel microseconds, but through fs/promises
// each call is a trip to a pool thread and back: a wake-up, a context switch on a machine with two
// cores, a promise. A Maildir copy took five such trips (open, writev, fdatasync, close, rename)
// and a directory fsync three, and those trips, not the disk, were most of what delivering cost
// the event loop (docs/benchmarks.md, "Where the time goes"). Only fsync waits for the disk, so
// only fsync still goes to the pool; the rest is done in place. Postfix's local(8) and smtpd(8)
// do all their file I/O this way, blocking, one process per job.
//
// Bigger writes still go to the pool: copying a large message is real work, and on a pool thread
// it runs beside the sessions instead of holding them up.

import { closeSync, fdatasync, fsync, openSync, writevSync } from 'node:fs';

/** Writes up to this many bytes are done on the event loop. */
export const INLINE_WRITE_LIMIT = 64 * 1024;

export function byteLength(buffers: readonly Buffer[]): number {
  let n = 0;
  for (const b of buffers) n += b.length;
  return n;
}

/** What is left of `buffers` once `written` bytes of them are on their way (short writes). */
export function remainingAfter(buffers: readonly Buffer[], written: number): Buffer[] {
  let skip = written;
  const rest: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return rest;
}

/** Writes all of `buffers` at `position`, or at the file's offset when `position` is null. */
export function writevAllSync(fd: number, buffers: readonly Buffer[], position: number | null): void {
  let rest = [...buffers];
  let at = position;
  while (rest.length > 0) {
    const written = writevSync(fd, rest, at ?? undefined);
    if (written === 0) throw new Error('writev wrote nothing');
    if (at !== null) at += written;
    rest = remainingAfter(rest, written);
  }
}

/** fdatasync(2) in the pool: the one call here that waits for the disk. */
export function fdatasyncInPool(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * fsync(2) of a directory, so that the names created or renamed in it are durable (a file's own
 * fsync does not cover its name, see fsync(2)). Opening and closing happen in place.
 */
export async function fsyncDirectory(path: string): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    closeSync(fd);
  }
}
