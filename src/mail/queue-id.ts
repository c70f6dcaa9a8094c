// Queue ids: what the 250 reply, the logs and the spool name a message by.
// Shape: 8 characters of milliseconds since the epoch, 3 of a per-millisecond counter and 5 random,
// all base62 with the alphabet in ASCII order, so that ids sort by acceptance time as strings.
// The random tail keeps ids unique across restarts and across processes sharing a clock tick.

import { randomBytes } from 'node:crypto';
import type { QueueId } from './envelope.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const TIME_WIDTH = 8; // 62^8 ms lasts until the year 8900
const COUNTER_WIDTH = 3;
const COUNTER_LIMIT = 62 ** COUNTER_WIDTH;
const RANDOM_WIDTH = 5;

export const QUEUE_ID_PATTERN = /^[0-9A-Za-z]{12,64}$/;

function base62(value: number, width: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < width; i++) {
    out = ALPHABET[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out;
}

/** Makes queue ids; one per process is enough (see defaultQueueIds). */
export class QueueIdGenerator {
  private lastMs = 0;
  private counter = 0;
  private random = randomBytes(0);
  private randomAt = 0;

  next(now: number = Date.now()): QueueId {
    // A clock that steps back must not break ordering: keep counting from the last tick.
    if (now > this.lastMs) {
      this.lastMs = now;
      this.counter = 0;
    } else if (++this.counter >= COUNTER_LIMIT) {
      this.lastMs += 1;
      this.counter = 0;
    }
    return base62(this.lastMs, TIME_WIDTH) + base62(this.counter, COUNTER_WIDTH) + this.randomTail();
  }

  private randomTail(): string {
    if (this.randomAt + RANDOM_WIDTH > this.random.length) {
      this.random = randomBytes(4096 * RANDOM_WIDTH);
      this.randomAt = 0;
    }
    let out = '';
    // The check above keeps randomAt inside the pool for these RANDOM_WIDTH reads.
    for (let i = 0; i < RANDOM_WIDTH; i++) out += ALPHABET[this.random[this.randomAt++]! % 62];
    return out;
  }
}

export const defaultQueueIds = new QueueIdGenerator();

export function isQueueId(text: string): boolean {
  return QUEUE_ID_PATTERN.test(text);
}
