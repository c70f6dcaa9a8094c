// Test doubles of the POP3 session's seams (src/pop3/pop3-host.ts) and a harness that drives a
// Pop3Session with bytes and reads back the responses.

import assert from 'node:assert/strict';
import type { TlsInfo } from '../../src/mail/tls-info.js';
import type { Maildrop, MaildropMessage, MaildropOpener, Pop3Config, Pop3Guard, Pop3Io } from '../../src/pop3/pop3-host.js';
import { Pop3Session } from '../../src/pop3/session.js';
import { feedInPieces } from './session-feed.js';

export const TLS: TlsInfo = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };

export class FakePop3Io implements Pop3Io {
  private chunks: Buffer[] = [];
  writes = 0;
  closed = false;
  tlsStarts = 0;
  failTls = false;
  write(data: string | Buffer): void {
    assert.equal(this.closed, false, 'no write after close');
    this.chunks.push(typeof data === 'string' ? Buffer.from(data) : data);
    this.writes += 1;
  }
  startTls(): Promise<TlsInfo> {
    this.tlsStarts += 1;
    return this.failTls ? Promise.reject(new Error('handshake failed')) : Promise.resolve(TLS);
  }
  close(): void {
    this.closed = true;
  }
  pauses = 0;
  resumes = 0;
  pause(): void {
    this.pauses += 1;
  }
  resume(): void {
    this.resumes += 1;
  }
  /** Everything written, as latin1 (one character per octet). */
  get output(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
  clear(): void {
    this.chunks = [];
  }
}

/** A maildrop in memory: messages as strings (CRLF line ends), and what the session did to it. */
export class MemoryMaildrop implements Maildrop {
  readonly messages: readonly MaildropMessage[];
  committed: number[] | undefined;
  released = 0;
  reads: number[] = [];
  failCommit = false;
  failRead = false;

  constructor(
    private readonly owner: MemoryMaildrops,
    readonly account: string,
    private readonly contents: readonly Buffer[],
  ) {
    this.messages = contents.map((c, i) => ({ uidl: `uid-${account}-${i + 1}`, size: c.length }));
  }

  async read(index: number): Promise<Buffer> {
    this.reads.push(index);
    if (this.failRead) throw new Error('disk read failed');
    const content = this.contents[index];
    assert.ok(content, `read of message index ${index}, which does not exist`);
    return content;
  }

  async commit(deleted: readonly number[]): Promise<void> {
    assert.equal(this.committed, undefined, 'commit once');
    assert.equal(this.released, 0, 'no commit after release');
    if (this.failCommit) throw new Error('unlink failed');
    this.committed = [...deleted];
    this.owner.remove(this.account, deleted);
    this.owner.unlock(this.account);
  }

  release(): void {
    assert.equal(this.committed, undefined, 'no release after commit');
    this.released += 1;
    assert.equal(this.released, 1, 'release once');
    this.owner.unlock(this.account);
  }
}

export class MemoryMaildrops implements MaildropOpener {
  private readonly boxes = new Map<string, Buffer[]>();
  private readonly locked = new Set<string>();
  opened: MemoryMaildrop[] = [];
  /** When set, open() waits for it. */
  gate: Promise<void> | undefined;

  constructor(boxes: Record<string, readonly string[]> = {}) {
    for (const [account, messages] of Object.entries(boxes)) this.boxes.set(account, messages.map((m) => Buffer.from(m, 'latin1')));
  }

  async open(account: string): Promise<Maildrop | 'in-use'> {
    if (this.gate) await this.gate;
    if (this.locked.has(account)) return 'in-use';
    this.locked.add(account);
    const drop = new MemoryMaildrop(this, account, this.boxes.get(account) ?? []);
    this.opened.push(drop);
    return drop;
  }

  lock(account: string): void {
    this.locked.add(account);
  }

  isLocked(account: string): boolean {
    return this.locked.has(account);
  }

  unlock(account: string): void {
    this.locked.delete(account);
  }

  remove(account: string, deleted: readonly number[]): void {
    const box = this.boxes.get(account) ?? [];
    this.boxes.set(account, box.filter((_, i) => !deleted.includes(i)));
  }

  contents(account: string): string[] {
    return (this.boxes.get(account) ?? []).map((b) => b.toString('latin1'));
  }

  /** The one maildrop opened, for tests that log in once. */
  get last(): MemoryMaildrop {
    const drop = this.opened.at(-1);
    assert.ok(drop, 'no maildrop was opened');
    return drop;
  }
}

/** Counts logins; `lockedIp`/`lockedAccounts` make it refuse, like the AuthThrottle. */
export class FakePop3Guard implements Pop3Guard {
  failures: Array<{ ip: string; account: string | undefined; mechanism: string }> = [];
  successes: Array<{ ip: string; account: string }> = [];
  lockedIp = false;
  lockedAccounts = new Set<string>();
  delayMs = 0;
  ipLocked(_ip: string): boolean {
    return this.lockedIp;
  }
  failure(ip: string, account: string | undefined, mechanism: string): number {
    this.failures.push({ ip, account, mechanism });
    return this.delayMs;
  }
  success(ip: string, account: string): void {
    this.successes.push({ ip, account });
  }
  isAccountLocked(account: string): boolean {
    return this.lockedAccounts.has(account);
  }
}

export const ALICE = 'alice@example.test';
export const PASSWORD = 'correct horse battery staple';

/** Alice's maildrop: a message with dot-led lines, a short one, and one with a long body. */
export const ALICE_MESSAGES: readonly string[] = [
  'From: bob@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\nmiddle\r\n..two dots\r\n.\r\nend\r\n',
  'Subject: short\r\n\r\nhi\r\n',
  'Subject: long\r\nX-Two: lines\r\n\r\nline 1\r\nline 2\r\nline 3\r\nline 4\r\n',
];

export const baseConfig: Pop3Config = {
  hostname: 'pop.example',
  stls: true,
  mechanisms: [],
  limits: { maxCommandLine: 255, maxCommands: 1000, maxErrors: 100 },
};

export interface Pop3Harness {
  session: Pop3Session;
  io: FakePop3Io;
  maildrops: MemoryMaildrops;
  guard: FakePop3Guard;
  sleeps: number[];
  passwordChecks: Array<{ user: string; password: string }>;
  errors: Array<{ obj: object; msg: string }>;
}

export interface HarnessOptions {
  config?: Partial<Pop3Config>;
  limits?: Partial<Pop3Config['limits']>;
  tls?: TlsInfo;
  boxes?: Record<string, readonly string[]>;
}

export function harness(options: HarnessOptions = {}): Pop3Harness {
  const io = new FakePop3Io();
  const maildrops = new MemoryMaildrops(options.boxes ?? { [ALICE]: ALICE_MESSAGES });
  const guard = new FakePop3Guard();
  const sleeps: number[] = [];
  const passwordChecks: Array<{ user: string; password: string }> = [];
  const errors: Array<{ obj: object; msg: string }> = [];
  const config = { ...baseConfig, ...options.config, limits: { ...baseConfig.limits, ...options.limits } };
  const session = new Pop3Session({
    config,
    clientIp: '192.0.2.7',
    io,
    maildrops,
    guard,
    checkPassword: async (user, password) => {
      passwordChecks.push({ user, password });
      if (user === 'explode') throw new Error('database is down');
      return user.toLowerCase() === ALICE && password === PASSWORD ? ALICE : undefined;
    },
    logger: { error: (obj, msg) => errors.push({ obj, msg }), info: () => {} },
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...(options.tls ? { tls: options.tls } : {}),
  });
  return { session, io, maildrops, guard, sleeps, passwordChecks, errors };
}

export { settle } from './session-feed.js';

export async function feed(h: Pop3Harness, input: string | Buffer, fragment = Infinity): Promise<void> {
  await feedInPieces(h.session, typeof input === 'string' ? Buffer.from(input, 'latin1') : input, fragment);
}

export const GREETING = '+OK pop.example POP3 server ready\r\n';

/** Starts a session, sends `input`, returns everything written after the greeting. */
export async function converse(input: string | Buffer, options: HarnessOptions = {}, fragment = Infinity) {
  const h = harness(options);
  h.session.start();
  assert.equal(h.io.output, GREETING);
  h.io.clear();
  await feed(h, input, fragment);
  const output = h.io.output;
  return { ...h, output, responses: parseResponses(output) };
}

/** USER/PASS as Alice. */
export const LOGIN = `USER ${ALICE}\r\nPASS ${PASSWORD}\r\n`;

/**
 * Splits the wire output into responses: a status line ("+OK", "-ERR", "+ " challenge), and for a
 * +OK followed by lines that are not status lines, the multi-line body up to the "." line, joined
 * with "|" and un-stuffed. Every line must belong to a well-formed response, and the output must
 * end with CRLF. (A body line that itself starts with "+OK" or "-ERR" would be misread: the test
 * maildrops hold none.)
 */
export function parseResponses(output: string): string[] {
  assert.ok(output === '' || output.endsWith('\r\n'), `output ends with CRLF: ${JSON.stringify(output.slice(-20))}`);
  const lines = output.split('\r\n').slice(0, -1);
  const responses: string[] = [];
  const status = /^(?:\+OK(?: [^\r\n]*)?|-ERR(?: \[[A-Z/-]+\])? [^\r\n]+|\+ [A-Za-z0-9+/=]*)$/;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    assert.match(line, status, `malformed status line ${JSON.stringify(line)}`);
    const next = lines[i + 1];
    if (!line.startsWith('+OK') || next === undefined || /^(?:\+OK|-ERR|\+ )/.test(next)) {
      responses.push(line);
      continue;
    }
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && lines[j] !== '.'; j++) {
      const b = lines[j] as string;
      if (b.startsWith('.')) assert.ok(b.startsWith('..'), `unstuffed dot line ${JSON.stringify(b)}`);
      body.push(b.startsWith('.') ? b.slice(1) : b);
    }
    assert.ok(j < lines.length, 'unfinished multi-line response');
    responses.push([line, ...body].join('|'));
    i = j;
  }
  return responses;
}

/** "+OK" or "-ERR" or "-ERR [CODE]" of each response, for tests about outcomes only. */
export const statuses = (responses: readonly string[]): string[] =>
  responses.map((r) => /^(\+OK|-ERR(?: \[[A-Z/-]+\])?|\+ )/.exec(r)?.[1] ?? r);
