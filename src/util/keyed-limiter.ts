// At most N holders per key at once (e.g. deliveries into one Maildir); others wait in order.
// Keys with no holder and no waiter are forgotten, so the map stays as small as the work in hand.

export class KeyedLimiter {
  private readonly slots = new Map<string, { holders: number; waiters: (() => void)[] }>();

  constructor(private readonly perKey: number) {
    if (!(perKey >= 1)) throw new RangeError('perKey must be at least 1');
  }

  /** Runs `work` once a slot for `key` is free, and frees the slot when it settles. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    await this.acquire(key);
    try {
      return await work();
    } finally {
      this.release(key);
    }
  }

  /** Holders of `key` right now (for tests and stats). */
  holders(key: string): number {
    return this.slots.get(key)?.holders ?? 0;
  }

  private acquire(key: string): Promise<void> {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { holders: 0, waiters: [] };
      this.slots.set(key, slot);
    }
    if (slot.holders < this.perKey) {
      slot.holders++;
      return Promise.resolve();
    }
    const s = slot;
    // The slot passes straight to the waiter in release(), so holders stays counted.
    return new Promise((resolve) => s.waiters.push(resolve));
  }

  private release(key: string): void {
    const slot = this.slots.get(key);
    if (!slot) return;
    const next = slot.waiters.shift();
    if (next) {
      next();
      return;
    }
    slot.holders--;
    if (slot.holders === 0) this.slots.delete(key);
  }
}
