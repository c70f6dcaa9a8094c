// fsync of directories. A new or renamed file is durable only once its directory entry is: the
// file's own fsync does not cover the name (see fsync(2), "Calling fsync() does not necessarily
// ensure that the entry in the directory containing the file has also reached disk").

import { open } from 'node:fs/promises';

export async function fsyncDirectory(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * Coalesces fsyncs of one directory: callers that arrive while an fsync is running share the next
 * one. Thousands of deliveries a second into the same Maildir then cost a few fsyncs, not thousands.
 * A caller never shares an fsync that started before it asked, because its rename may have happened
 * after that fsync began.
 */
export class DirectorySync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(readonly path: string) {}

  sync(): Promise<void> {
    if (this.running === undefined) {
      this.running = this.start();
      return this.running;
    }
    this.next ??= this.running.then(
      () => this.promote(),
      () => this.promote(),
    );
    return this.next;
  }

  private promote(): Promise<void> {
    this.next = undefined;
    this.running = this.start();
    return this.running;
  }

  private start(): Promise<void> {
    const done = fsyncDirectory(this.path);
    const clear = (): void => {
      if (this.running === done) this.running = undefined;
    };
    done.then(clear, clear);
    return done;
  }
}
