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
