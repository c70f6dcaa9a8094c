// What `npm run soak` judges, kept apart from the traffic so it can be tested on its own: whether
// a series of samples (the server's RSS, its open descriptors) stayed flat, and whether every
// message the server answered 250 for was delivered, each counted by a unique id.
//
// Flat: a statistic of the last 20% of the samples against the same of the second 10% (the
// first 10% is warm-up: the heap grows to its working size, code is compiled, pools fill). A leak
// shows as a steady rise, which moves the late window above the early one; a late window lower
// than the early one (the collector handing memory back, fewer connections open) is no leak and
// passes, though the summary shows the ratio.
//
// The statistic is the mean for descriptors: they go up and down with the connections open, and
// a spike in one sample barely moves a mean over a fifth of the run. For RSS it is the upper
// envelope (the 90th percentile of the window): a garbage-collected process's RSS swings between
// what the collector hands back to the kernel and what it keeps, and V8 hands back a lot in its
// first minutes (its memory reducer) and little once its heap is sized, so the lower values say
// when it last shrank the heap, not how much the server holds. A leak raises the level RSS
// climbs back to, which is what the upper envelope follows; one spike is above the 90th
// percentile of a window of many samples.

/** Samples at least, so that each window holds one or more. */
const MIN_SAMPLES = 10;

export type Statistic = 'mean' | 'upper';

export interface Flatness {
  /** The statistic of the samples in the second tenth of the run. */
  readonly early: number;
  /** The statistic of the samples in the last fifth. */
  readonly late: number;
  /** late / early. */
  readonly ratio: number;
  /** ratio <= 1 + tolerance: no more growth than that. */
  readonly flat: boolean;
}

/**
 * `warmUp`: samples to skip at least, however short the run: until the longest job (an idle
 * client) has had time to end once, the connections open are still climbing to their level.
 */
export function flatness(samples: readonly number[], statistic: Statistic, tolerance = 0.1, warmUp = 0): Flatness {
  if (samples.length < MIN_SAMPLES) throw new Error(`${samples.length} samples are too few to judge (at least ${MIN_SAMPLES})`);
  const n = samples.length;
  const of = statistic === 'mean' ? mean : upper;
  const from = Math.min(Math.max(Math.floor(n * 0.1), warmUp), Math.floor(n * 0.8) - 1);
  const early = of(samples.slice(from, Math.max(from + Math.floor(n * 0.1), from + 1)));
  const late = of(samples.slice(Math.floor(n * 0.8)));
  const ratio = late / early;
  return { early, late, ratio, flat: ratio <= 1 + tolerance };
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** The 90th percentile (nearest rank). */
function upper(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.9) - 1)]!;
}

/**
 * Which deliveries the run is owed and which it saw. A delivery is one message (its id) at one
 * destination (a mailbox, or the relay peer's recipient): a message to an alias with two targets
 * is owed twice. Deliveries may be seen before the 250 reaches the client (the server delivers as
 * soon as it has queued the message), so both sides are kept and compared at the end.
 */
export class DeliveryLedger {
  private readonly owed = new Set<string>();
  private readonly seen = new Set<string>();
  private duplicateCount = 0;

  /** The server answered 250 for message `id` to these destinations. */
  accepted(id: string, destinations: readonly string[]): void {
    for (const d of destinations) this.owed.add(key(id, d));
  }

  /** Message `id` arrived at `destination` (read from its mailbox or the relay peer). */
  delivered(id: string, destination: string): void {
    const k = key(id, destination);
    if (this.seen.has(k)) this.duplicateCount += 1;
    else this.seen.add(k);
  }

  get owedCount(): number {
    return this.owed.size;
  }

  get deliveredCount(): number {
    let count = 0;
    for (const k of this.owed) if (this.seen.has(k)) count += 1;
    return count;
  }

  /** Deliveries owed and not (yet) seen, e.g. "m17 -> u3@soak.test". */
  missing(): string[] {
    return [...this.owed].filter((k) => !this.seen.has(k)).map(show);
  }

  /** Deliveries seen of messages the server never accepted there (a refused or dropped one delivered). */
  unexpected(): string[] {
    return [...this.seen].filter((k) => !this.owed.has(k)).map(show);
  }

  /** Deliveries seen more than once. */
  get duplicates(): number {
    return this.duplicateCount;
  }
}

function key(id: string, destination: string): string {
  return `${id}\n${destination.toLowerCase()}`;
}

function show(k: string): string {
  return k.replace('\n', ' -> ');
}
