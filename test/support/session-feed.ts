// Driving an I/O-free protocol session (SMTP or POP3) from a test: feed it bytes in pieces of a
// chosen size, then wait until it has acted on all of them.

import assert from 'node:assert/strict';

export interface FedSession {
  receive(chunk: Buffer): void;
  /** True while the session is working on input it was given. */
  readonly busy: boolean;
}

/** Waits until the session has acted on everything it was given. */
export async function settle(session: FedSession): Promise<void> {
  // The fakes answer at once; real SASL mechanisms hash passwords on the thread pool, so after a
  // while the wait goes on in timer steps (up to ~10 s; no timing is asserted).
  for (let i = 0; i < 3000; i++) {
    await new Promise((resolve) => (i < 1000 ? setImmediate(resolve) : setTimeout(resolve, 5)));
    if (!session.busy) return;
  }
  assert.fail('the session never went back to waiting for input');
}

/** Hands `bytes` to the session in pieces of `fragment` octets, then settles. */
export async function feedInPieces(session: FedSession, bytes: Buffer, fragment = Infinity): Promise<void> {
  for (let i = 0; i < bytes.length; i += fragment) {
    session.receive(bytes.subarray(i, Math.min(bytes.length, i + fragment)));
  }
  await settle(session);
}

/** Splits `bytes` at the given cut points (taken modulo its length), as a socket might deliver it. */
export function cutAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    if (p > last) pieces.push(bytes.subarray(last, p));
    last = Math.max(last, p);
  }
  pieces.push(bytes.subarray(last));
  return pieces;
}
