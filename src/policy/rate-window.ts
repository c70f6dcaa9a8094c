// Counting "how many in the last hour (or day)" with two numbers per window instead of a log of
// timestamps: the "sliding window counter". Windows are fixed, aligned to the epoch; the count for
// the last `length` ms is the current window's count plus the previous window's count weighted by
// how much of it still lies inside the sliding window. A plain fixed window would let an account
// send twice its limit across a window boundary (all at 10:59, all again at 11:00); this estimate
// allows at most a little more than the limit, and costs one row in the store.

import type { RateWindowState } from '../store/store.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** The state moved to the window that contains `now`. */
export function rollTo(w: RateWindowState | undefined, now: number, length: number): RateWindowState {
  const start = now - (now % length);
  if (w === undefined) return { start, current: 0, previous: 0 };
  // A clock that went backwards keeps the newer window: counts are never handed back early.
  if (w.start >= start) return w;
  if (w.start === start - length) return { start, current: 0, previous: w.current };
  return { start, current: 0, previous: 0 };
}

/**
 * Events in the `length` ms before `now`, the previous window's share rounded down by default.
 * Math.ceil never lets a burst through just because it straddles a window boundary (N events at
 * 10:00:59.9 and one at 10:01:00.1 count N + 1), for limits meant to hold exactly (client-rate.ts).
 */
export function countInWindow(
  w: RateWindowState | undefined,
  now: number,
  length: number,
  round: (share: number) => number = Math.floor,
): number {
  const r = rollTo(w, now, length);
  const elapsed = Math.min(1, Math.max(0, (now - r.start) / length));
  return r.current + round(r.previous * (1 - elapsed));
}

/** The state after `n` more events at `now`. */
export function addToWindow(w: RateWindowState | undefined, now: number, length: number, n: number): RateWindowState {
  const r = rollTo(w, now, length);
  return { start: r.start, current: r.current + n, previous: r.previous };
}
