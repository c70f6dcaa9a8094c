// Notices when files may have changed, by watching the directories that hold them: tools that
// renew certificates replace files rather than write into them (certbot swaps the symlinks in
// live/, Kubernetes swaps a "..data" symlink, editors rename a temporary file over the original),
// and a watch on the old file would see none of that. Any event in such a directory counts; the
// owner re-reads the files and decides whether anything really changed. Bursts of events (a key
// and a certificate written one after the other) are collapsed into one call.

import { watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';

export class FileWatcher {
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The directories watched, sorted: lets the owner tell whether a new file list needs a new watcher. */
  readonly directories: readonly string[];

  constructor(
    files: readonly string[],
    private readonly onChange: () => void,
    private readonly options: { readonly debounceMs: number; readonly logger: Logger },
  ) {
    this.directories = directoriesOf(files);
    for (const dir of this.directories) this.watchDirectory(dir);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.watchers.splice(0)) w.close();
  }

  private watchDirectory(dir: string): void {
    const { logger } = this.options;
    let watcher: FSWatcher;
    try {
      // persistent: false, so a forgotten watcher never keeps the process alive.
      watcher = watch(dir, { persistent: false }, this.onEvent);
    } catch (err) {
      logger.warn({ dir, err: (err as Error).message }, 'cannot watch for certificate changes here; use SIGHUP to reload');
      return;
    }
    watcher.on('error', (err) => {
      logger.warn({ dir, err: err.message }, 'stopped watching for certificate changes here; use SIGHUP to reload');
      watcher.close();
    });
    this.watchers.push(watcher);
  }

  private readonly onEvent = (): void => {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.onChange();
    }, this.options.debounceMs);
    this.timer.unref();
  };
}

export function directoriesOf(files: readonly string[]): string[] {
  return [...new Set(files.map((f) => dirname(resolve(f))))].sort();
}
