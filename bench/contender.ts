// A server under test as the benchmark sees it, and one smtp-source run against it: the rate
// at which it answered 250, then a wait until every message of the run is in its Maildir.

import { readdirSync } from 'node:fs';
import { runSmtpSource } from './smtp-source.js';

const DRAIN_TIMEOUT_MS = 180_000;

/** One run's shape: smtp-source's sessions, body size, connection reuse and message count. */
export interface Row {
  readonly sessions: number;
  readonly size: number;
  readonly reuse: boolean;
  /** Messages per run, chosen so each run lasts a few seconds at most. */
  readonly messages: number;
}

/** A server under test, as the benchmark sees it: a port, and a Maildir that fills up. */
export interface Contender {
  readonly name: string;
  readonly port: number;
  readonly maildirNew: string;
  /** Messages accepted but not yet delivered (beyond what the Maildir count shows). */
  queued(): number;
}

/** Messages each contender's Maildir held after its previous run. */
const deliveredBefore = new Map<string, number>();

/** One smtp-source run; returns messages/s. Waits for the delivery backlog to drain after it. */
export async function measure(contender: Contender, row: Row, recipient: string): Promise<number> {
  const seconds = await runSmtpSource({ ...row, port: contender.port, recipient });
  await drain(contender, row.messages);
  return row.messages / seconds;
}

/**
 * Waits until every message of the run is in the Maildir and nothing is queued: one row's
 * backlog must not slow the next, and a count short of what smtp-source was told was accepted
 * is lost mail, which breaks the benchmark.
 *
 * The Maildirs are not emptied between rows. Deleting thousands of files just before a run made
 * each new file cost far more kernel time on this machine's ext4 (without a journal it skips
 * inodes freed in the last minutes when it allocates one), so a run measured the harness's
 * deletions more than the server. Both servers keep their mail until the end instead.
 */
export async function drain(contender: Contender, sent: number): Promise<void> {
  const expected = (deliveredBefore.get(contender.name) ?? 0) + sent;
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const delivered = countMessages(contender.maildirNew);
    if (delivered >= expected && contender.queued() === 0) {
      deliveredBefore.set(contender.name, delivered);
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`${contender.name}: only ${delivered} of ${expected} messages delivered after ${DRAIN_TIMEOUT_MS / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function listMessages(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => !name.startsWith('.'));
  } catch {
    return []; // Not created until the first delivery.
  }
}

export function countMessages(dir: string): number {
  return listMessages(dir).length;
}


/** The lowest and highest of a ratio over the rounds of a row. */
export type Spread = readonly [number, number];

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** a[i] / b[i] for each round i (the rounds ran side by side): their lowest and highest. */
export function ratioSpread(a: readonly number[], b: readonly number[]): Spread {
  const ratios = a.map((x, i) => x / b[i]!);
  return [Math.min(...ratios), Math.max(...ratios)];
}

/** "1.23 [1.10,1.31]": the ratio of the medians and the spread of the per-round ratios. */
export function formatRatio(ratio: number, [lo, hi]: Spread): string {
  return `${ratio.toFixed(2)} [${lo.toFixed(2)},${hi.toFixed(2)}]`;
}
