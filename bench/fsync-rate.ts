// The disk's own pace, measured in the same run as the servers: how many small write + fsync
// pairs per second one writer gets in the directory the Maildirs live in. A server that fsyncs
// once per message cannot beat it in a single session; when every contender's figure falls
// together with it, the disk set the pace, not a server.

import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Write + fsync pairs per second over `ms` milliseconds, 4 KiB at a time, in a temp dir under `parent`. */
export function fsyncRate(parent: string, ms = 1000): number {
  const dir = mkdtempSync(join(parent, 'fsync-rate-'));
  const fd = openSync(join(dir, 'probe'), 'w');
  const block = Buffer.alloc(4096, 0x78);
  try {
    let count = 0;
    const started = performance.now();
    while (performance.now() - started < ms) {
      writeSync(fd, block, 0, block.length, (count % 256) * block.length);
      fsyncSync(fd);
      count++;
    }
    return count / ((performance.now() - started) / 1000);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Empty files created per second (open with O_CREAT|O_EXCL, then close) over `ms` milliseconds,
 * into `dir`. Every server in the table creates a file per message (Postfix's queue file, the
 * peer's file, Postern's Maildir copy), and on some file systems that cost moves a lot: ext4
 * without a journal skips, one by one, the inodes freed in the last seconds to minutes when it
 * looks for a free one (fs/ext4/ialloc.c, recently_deleted), so a create near many files
 * deleted shortly before took 0.5-1 ms here instead of 30 us. The files are left for the
 * caller to remove after the rows, as deleting them now would slow the rows down the same way.
 */
export function fileCreateRate(dir: string, ms = 300): number {
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    closeSync(openSync(join(dir, `c${count}`), 'wx'));
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}
