// Memory under a flood: one session is sent far more than any limit allows (an endless command
// line, DATA past the message size, an endless line inside DATA, a huge BDAT, an endless AUTH
// response, an endless stream of pipelined commands), by a socket that honours backpressure, and
// what the session still holds once it has read it all is measured after garbage collection. It
// must stay within a few MiB whatever the amount sent: input is buffered only up to the
// configured limits (src/util/line-reader.ts, src/smtp/message-body.ts, src/util/input-queue.ts).

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { settle } from '../support/session-feed.js';
import { harness as pop3Harness } from '../support/test-pop3.js';
import type { FuzzWorld } from './fuzz-world.js';
import { newSession } from './smtp-target.js';

/** A full garbage collection: global.gc under --expose-gc, else the same function fetched from V8. */
export function collectGarbage(): void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed();
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Heap and off-heap (Buffer) memory in use, after a full collection. */
export async function memoryInUse(): Promise<number> {
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  collectGarbage();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

interface FloodShape {
  readonly name: string;
  readonly protocol: 'smtp' | 'pop3';
  /** What opens the flood (sent once). */
  readonly opening: string;
  /** The flood itself, repeated to fill each chunk. */
  readonly unit: string;
}

export const FLOODS: readonly FloodShape[] = [
  { name: 'smtp: one endless command line', protocol: 'smtp', opening: 'EHLO x\r\nMAIL FROM:<', unit: 'a' },
  { name: 'smtp: DATA far over the message size', protocol: 'smtp', opening: 'EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n', unit: `${'x'.repeat(78)}\r\n` },
  { name: 'smtp: one endless line in DATA', protocol: 'smtp', opening: 'EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n', unit: 'x' },
  { name: 'smtp: a huge BDAT chunk', protocol: 'smtp', opening: 'EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 999999999999999\r\n', unit: 'x\r\n' },
  { name: 'smtp: a refused huge BDAT chunk', protocol: 'smtp', opening: 'EHLO x\r\nBDAT 999999999999999 LAST\r\n', unit: 'RSET\r\n' },
  { name: 'smtp: one endless AUTH response', protocol: 'smtp', opening: 'EHLO x\r\nAUTH PLAIN\r\n', unit: 'QUFB' },
  { name: 'smtp: endless pipelined commands', protocol: 'smtp', opening: 'EHLO x\r\n', unit: 'NOOP\r\nRSET\r\nVRFY x\r\n' },
  { name: 'pop3: one endless command line', protocol: 'pop3', opening: 'USER ', unit: 'a' },
  { name: 'pop3: endless pipelined commands', protocol: 'pop3', opening: 'USER alice@example.test\r\nPASS correct horse battery staple\r\n', unit: 'NOOP\r\nSTAT\r\nLIST\r\n' },
];

const CHUNK = 64 * 1024;

interface Flooded {
  receive(chunk: Buffer): void;
  readonly busy: boolean;
  readonly closed: boolean;
}

/** Sends `megabytes` of the flood; returns the bytes of memory the session holds afterwards. */
export async function flood(world: FuzzWorld, shape: FloodShape, megabytes: number): Promise<{ retained: number; closed: boolean }> {
  const before = await memoryInUse();
  let session: Flooded;
  let paused: () => boolean;
  if (shape.protocol === 'smtp') {
    // Submission over implicit TLS: AUTH is offered, and the limits are the defaults' order.
    const limits = { maxMessageSize: 100_000, maxRecipients: 100, maxCommandLine: 512, maxTextLine: 1000, maxErrors: 1_000_000_000, maxMessagesPerConnection: 0 };
    const s = newSession(world, shape.opening.includes('AUTH') ? 'submissions-tls13' : 'mx', { bareNewline: 'reject', limits, failTls: false });
    s.io.keep = false;
    session = s.session;
    paused = () => s.io.paused;
    s.session.start();
  } else {
    const h = pop3Harness({ limits: { maxErrors: 1_000_000_000, maxCommands: 1_000_000_000 } });
    session = h.session;
    paused = () => h.io.pauses > h.io.resumes;
    // Keep only the count of what is written, like a socket that sent it.
    h.io.write = () => {};
    h.session.start();
  }
  session.receive(Buffer.from(shape.opening));
  const unit = Buffer.from(shape.unit);
  const chunks = Math.ceil((megabytes * 1024 * 1024) / CHUNK);
  for (let i = 0; i < chunks && !session.closed; i++) {
    if (paused() || i % 16 === 0) await settle(session);
    // A fresh buffer each time: a session that kept them would show in arrayBuffers.
    const chunk = Buffer.alloc(CHUNK);
    for (let at = 0; at < CHUNK; at += unit.length) unit.copy(chunk, at);
    session.receive(chunk);
  }
  await settle(session);
  const retained = (await memoryInUse()) - before;
  // Used after the measurement, so the session (and whatever it holds) was alive during it.
  return { retained, closed: session.closed };
}
