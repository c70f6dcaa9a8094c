// Crash safety under load: real clients send to a real `postern serve` over loopback while the
// server is killed with SIGKILL at random moments and restarted at once on the same data_dir.
// Each message has its own Message-ID; a client records the messages the server answered 250 to
// the final dot (RFC 5321 4.1.1.4: from then on the message is the server's responsibility). When
// the load ends and the queue is empty, every Maildir is read back (new/ and cur/), and each
// copy is counted: every answered message must be in each of its mailboxes exactly once.
//
// Half the kills (seeded) come after a lull: the clients pause for up to lullMs first, as traffic
// does between bursts. A lull is the hard case for exactly-once: with no new message to share an
// fdatasync with, the "delivered" marks of the last deliveries wait for the spool's lazy sync
// (spool.ts), so a kill then finds durable copies whose marks are not.
//
// Messages whose 250 the kill cut off were never acknowledged: the client does not send them
// again, so each may be in its mailboxes once or not at all, but never twice either: a second
// copy of anything is ours. (A real client would send those again, and get a second copy that no
// server can avoid: RFC 1047.)

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../support/postfix.js';
import { delay, PosternInstance, type PosternProcess } from '../support/postern-process.js';
import { SmtpClient } from '../support/smtp-client.js';

const DOMAIN = 'example.test';
const SENDER = 'load@remote.test';
const MESSAGE_ID = /^Message-ID: <([^>]+)@crash\.test>\r?$/im;
const RECOVERY_NOTE = 'queue: copies filed before the restart count as delivered';

export interface CrashRunOptions {
  /** SIGKILLs during the load. */
  readonly kills: number;
  /** Client connections sending at once. */
  readonly connections: number;
  /** The server runs between this and maxUpMs (uniformly, seeded) after a start before it is killed. */
  readonly minUpMs: number;
  readonly maxUpMs: number;
  readonly seed: number;
  /** Before half the kills the clients pause for up to this long (0: never). */
  readonly lullMs: number;
  /** Mailboxes the messages go to; every third message goes to two of them. */
  readonly mailboxes?: number;
  /** How long to wait, once the load ends, for every answered message to be delivered. */
  readonly drainTimeoutMs?: number;
  /** Progress lines (the run can take minutes). */
  readonly progress?: (line: string) => void;
}

export interface CrashRunResult {
  readonly kills: number;
  /** Kills that came after a lull in the load. */
  readonly afterLull: number;
  /** Messages answered 250. */
  readonly accepted: number;
  /** Answered messages in every one of their mailboxes. */
  readonly delivered: number;
  /** Answered messages missing from at least one of their mailboxes. */
  readonly lost: number;
  /** Messages (answered or not) with more than one copy in some mailbox. */
  readonly duplicated: number;
  /** Messages cut off before their 250 that were delivered all the same (allowed, once). */
  readonly unansweredDelivered: number;
  /** Copies the restarted server found already filed and did not file again (from its log). */
  readonly foundAtRestart: number;
  /** Examples of lost and duplicated messages, for the failure message. */
  readonly examples: readonly string[];
}

/** A small seeded generator (mulberry32): the kill times of a run can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Sent {
  readonly mailboxes: readonly string[];
  answered: boolean;
}

export async function crashRun(opts: CrashRunOptions): Promise<CrashRunResult> {
  const random = seeded(opts.seed);
  const say = opts.progress ?? (() => undefined);
  const users = Array.from({ length: opts.mailboxes ?? 4 }, (_, i) => `user${i}@${DOMAIN}`);
  // A fixed port, so that clients find the restarted server where the killed one was.
  const port = await freePort('127.0.0.1');
  const instance = new PosternInstance({ mxPort: port, submission: false, logLevel: 'info' });
  const sent = new Map<string, Sent>();
  let foundAtRestart = 0;
  let server: PosternProcess | undefined;
  try {
    await instance.cliOk(['domain', 'add', DOMAIN]);
    for (const user of users) await instance.addUser(user);
    server = await instance.start();

    let loadRunning = true;
    let paused = false;
    let counter = 0;
    const sender = async (c: number): Promise<void> => {
      while (loadRunning) {
        let client: SmtpClient | undefined;
        try {
          client = await SmtpClient.open(port);
          while (loadRunning) {
            while (paused) await delay(5);
            const n = counter++;
            const id = `m${n}-c${c}`;
            const to = n % 3 === 0 ? [users[n % users.length]!, users[(n + 1) % users.length]!] : [users[n % users.length]!];
            const record: Sent = { mailboxes: to, answered: false };
            sent.set(id, record);
            const reply = await client.sendMail(SENDER, to, messageText(id, to));
            if (reply.code !== 250) throw new Error(`refused: ${reply.text}`);
            record.answered = true;
          }
          await client.quit();
        } catch {
          // Killed under us (or not up yet): the message in hand stays unanswered; connect again.
          client?.destroy();
          if (loadRunning) await delay(20);
        }
      }
    };
    const senders = Array.from({ length: opts.connections }, (_, c) => sender(c));

    let afterLull = 0;
    for (let k = 1; k <= opts.kills; k++) {
      await delay(opts.minUpMs + random() * (opts.maxUpMs - opts.minUpMs));
      const lull = opts.lullMs > 0 && random() < 0.5 ? random() * opts.lullMs : 0;
      if (lull > 0) {
        paused = true;
        afterLull++;
        await delay(lull);
      }
      await server.kill();
      paused = false;
      say(`kill ${k}/${opts.kills}${lull > 0 ? ` after a ${Math.round(lull)} ms lull` : ''}: ${answeredCount(sent)} messages answered 250 so far`);
      server = await instance.start();
      foundAtRestart += await copiesFoundAtStart(server);
    }
    // Load across the last restart too, then stop sending.
    await delay(opts.minUpMs);
    loadRunning = false;
    await Promise.all(senders);

    await waitUntilDrained(instance, users, sent, opts.drainTimeoutMs ?? 120_000);
    const code = await server.stop();
    server = undefined;
    if (code !== 0) throw new Error(`SIGTERM after the run must stop the server with exit code 0, got ${code}`);
    return { kills: opts.kills, afterLull, ...tally(sent, countCopies(instance, users), foundAtRestart) };
  } finally {
    await server?.kill();
    await instance.dispose();
  }
}

function messageText(id: string, to: readonly string[]): string {
  return [
    `From: <${SENDER}>`,
    `To: ${to.map((a) => `<${a}>`).join(', ')}`,
    `Subject: crash test ${id}`,
    `Message-ID: <${id}@crash.test>`,
    '',
    `Body of ${id}: a line of text to make the message a little more than its headers.`,
    '',
  ].join('\r\n');
}

function answeredCount(sent: ReadonlyMap<string, Sent>): number {
  let n = 0;
  for (const s of sent.values()) if (s.answered) n++;
  return n;
}

/**
 * What the restarted server said it found (QueueManager.open logs it before "listening"). The
 * server may take connections before that line is read, so wait for whichever comes first.
 */
async function copiesFoundAtStart(server: PosternProcess): Promise<number> {
  const entry = await server.waitForLog((e) => e.msg === RECOVERY_NOTE || e.msg === 'listening');
  return entry.msg === RECOVERY_NOTE ? Number(entry.copies ?? 0) : 0;
}

/** Copies per "<mailbox> <message id>", from new/ and cur/ of every mailbox. */
function countCopies(instance: PosternInstance, users: readonly string[]): Map<string, number> {
  const copies = new Map<string, number>();
  for (const user of users) {
    const maildir = join(instance.maildirNew(user), '..');
    for (const sub of ['new', 'cur']) {
      const dir = join(maildir, sub);
      if (!existsSync(dir)) continue;
      for (const name of readdirSync(dir)) {
        const id = MESSAGE_ID.exec(readFileSync(join(dir, name), 'latin1'))?.[1];
        if (id === undefined) continue;
        const key = `${user} ${id}`;
        copies.set(key, (copies.get(key) ?? 0) + 1);
      }
    }
  }
  return copies;
}

/** Until every answered message is in all its mailboxes and `postern queue list` is empty. */
async function waitUntilDrained(instance: PosternInstance, users: readonly string[], sent: ReadonlyMap<string, Sent>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const copies = countCopies(instance, users);
    const missing = [...sent].filter(([id, s]) => s.answered && s.mailboxes.some((m) => !copies.has(`${m} ${id}`))).length;
    const queued = missing === 0 ? (JSON.parse(await instance.cliOk(['queue', 'list', '--json'])) as unknown[]).length : -1;
    if (missing === 0 && queued === 0) return;
    // Past the deadline the tally names what is missing.
    if (Date.now() > deadline) return;
    await delay(250);
  }
}

function tally(
  sent: ReadonlyMap<string, Sent>,
  copies: ReadonlyMap<string, number>,
  foundAtRestart: number,
): Omit<CrashRunResult, 'kills' | 'afterLull'> {
  let accepted = 0;
  let delivered = 0;
  let lost = 0;
  let duplicated = 0;
  let unansweredDelivered = 0;
  const examples: string[] = [];
  for (const [id, s] of sent) {
    const counts = s.mailboxes.map((m) => copies.get(`${m} ${id}`) ?? 0);
    if (counts.some((n) => n > 1)) {
      duplicated++;
      if (examples.length < 10) examples.push(`${id} twice (${s.answered ? 'answered 250' : 'unanswered'})`);
    }
    if (s.answered) {
      accepted++;
      if (counts.every((n) => n >= 1)) delivered++;
      else {
        lost++;
        if (examples.length < 10) examples.push(`${id} lost`);
      }
    } else if (counts.some((n) => n >= 1)) unansweredDelivered++;
  }
  return { accepted, delivered, lost, duplicated, unansweredDelivered, foundAtRestart, examples };
}

/** One line for people: what the run showed. */
export function describeResult(r: CrashRunResult): string {
  return (
    `${r.kills} SIGKILLs (${r.afterLull} after a lull): ${r.accepted} messages answered 250, ${r.delivered} delivered, ${r.lost} lost, ` +
    `${r.duplicated} duplicated; ${r.unansweredDelivered} unanswered ones delivered (once); ` +
    `${r.foundAtRestart} copies found already filed at a restart and not filed again`
  );
}
