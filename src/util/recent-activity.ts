// When something last happened, for a question like "is a client waiting on us right now?".
// The queue marks every message it accepts; the Maildir writer widens its concurrency once none
// has come for a while (src/delivery/local/maildir.ts).

import { performance } from 'node:perf_hooks';

export class RecentActivity {
  private last = Number.NEGATIVE_INFINITY;

  constructor(private readonly now: () => number = () => performance.now()) {}

  mark(): void {
    this.last = this.now();
  }

  /** Whether mark() was called in the last `ms` milliseconds. */
  within(ms: number): boolean {
    return this.now() - this.last < ms;
  }
}
