// fsync of directories. A new or renamed file is durable only once its directory entry is: the
// file's own fsync does not cover the name (see fsync(2), "Calling fsync() does not necessarily
// ensure that the entry in the directory containing the file has also reached disk").

import { close, constants, fsync, open } from 'node:fs';

/** Open, fsync, close: with callbacks, which cost the event loop less than fs/promises' FileHandle. */
export function fsyncDirectory(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(path, constants.O_RDONLY | constants.O_DIRECTORY, (err, fd) => {
      if (err) return reject(err);
      fsync(fd, (syncErr) => close(fd, (closeErr) => (syncErr ?? closeErr ? reject(syncErr ?? closeErr) : resolve())));
    });
  });
}

/**
 * Coalesces fsyncs of one directory: callers share the next fsync that has not started yet.
 * Thousands of deliveries a second into the same Maildir then cost a few fsyncs, not thousands.
 * A caller never shares an fsync that started before it asked, because its rename may have
 * happened after that fsync began.
 */
export class DirectorySync {
  /** The fsync running now, if any. */
  private running: Promise<void> | undefined;
  /** The next fsync, not started yet: new callers join it. */
  private pending: Promise<void> | undefined;

  constructor(readonly path: string) {}

  sync(): Promise<void> {
    if (this.pending) return this.pending;
    const previous = this.running ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => {
        // From here on, a new caller's rename may come after this fsync: it waits for the next.
        this.pending = undefined;
        const done = fsyncDirectory(this.path);
        this.running = done;
        const clear = (): void => {
          if (this.running === done) this.running = undefined;
        };
        done.then(clear, clear);
        return done;
      });
    this.pending = next;
    return next;
  }
}
