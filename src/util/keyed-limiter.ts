// At most N holders per key at once (e.g. deliveries into one Maildir); others wait in order.
// N may change over time (a function asked at every acquire and release): a wider limit lets
// waiters in as holders leave, a narrower one lets holders leave without replacing them.
// Keys with no holder and no waiter are forgotten, so the map stays as small as the work in hand.

export class KeyedLimiter {
  private readonly slots = new Map<string, { holders: number; waiters: (() => void)[] }>();
  private readonly limit: () => number;

  constructor(perKey: number | (() => number)) {
    if (typeof perKey === 'number' && !(perKey >= 1)) throw new RangeError('perKey must be at least 1');
    this.limit = typeof perKey === 'number' ? () => perKey : () => Math.max(1, perKey());
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
    if (slot.holders < this.limit()) {
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
    slot.holders--;
    // The freed slot, and any the limit has gained since, go to the waiters in order.
    const limit = this.limit();
    while (slot.holders < limit && slot.waiters.length > 0) {
      slot.holders++;
      slot.waiters.shift()!();
    }
    if (slot.holders === 0) this.slots.delete(key);
  }
}
