// A Map with a size cap that forgets the least recently used entry first. For tables keyed by
// what an attacker chooses (client IPs, claimed account names): without the cap, a botnet or a
// stream of made-up user names would grow them until the process runs out of memory.

export class LruMap<K, V> {
  private readonly map = new Map<K, V>();

  constructor(private capacity: number) {
    checkCapacity(capacity);
  }

  /** A new cap; when it is below the size, the least recently used entries go. */
  resize(capacity: number): void {
    checkCapacity(capacity);
    this.capacity = capacity;
    while (this.map.size > capacity) this.map.delete(this.map.keys().next().value as K);
  }

  get size(): number {
    return this.map.size;
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value === undefined) return undefined;
    // A Map iterates in insertion order, so re-inserting moves the key to the young end.
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as K;
      this.map.delete(oldest);
    }
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** Every entry, least recently used first, without making any used: for copying a table in order. */
  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }

  /** The least recently used entry, without making it used: for dropping expired entries first. */
  oldest(): [K, V] | undefined {
    return this.map.entries().next().value;
  }
}

function checkCapacity(capacity: number): void {
  if (!(capacity >= 1)) throw new RangeError(`LruMap capacity must be at least 1, got ${capacity}`);
}
