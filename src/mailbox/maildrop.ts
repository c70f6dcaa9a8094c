// A user's Maildir as a POP3 maildrop (RFC 1939): the messages in new/ and cur/, oldest first,
// each with a UIDL that never changes and an exact size with CRLF line ends.
//
// UIDL: a Maildir file's base name (everything before ":2,", where flags live) is unique and stays
// the same when a reader moves the file from new/ to cur/ or changes its flags (Dovecot does both),
// so it serves as the UIDL as it is when it is a valid one (RFC 1939 7: 1-70 characters
// 0x21-0x7E), or as a SHA-256 digest of it otherwise. It is never reused: no two deliveries share
// a base name.
// Size: ",W=<n>" in the name when the writer recorded it (we and Dovecot do); otherwise the file
// is read once and its bare LFs counted as CRLF.
// One session holds a maildrop at a time (RFC 1939 8: the server locks it); a second open gets
// 'in-use'. The lock is in this process: one server owns a mail root.

import { createHash } from 'node:crypto';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Maildrop, MaildropMessage, MaildropOpener } from '../pop3/pop3-host.js';
import { maildirPath } from './maildir-path.js';

interface Entry extends MaildropMessage {
  readonly path: string;
}

export class MaildirMaildrops implements MaildropOpener {
  private readonly locked = new Set<string>();

  constructor(private readonly mailRoot: string) {}

  async open(account: string): Promise<Maildrop | 'in-use'> {
    const dir = maildirPath(this.mailRoot, account);
    if (this.locked.has(dir)) return 'in-use';
    this.locked.add(dir);
    try {
      const entries = await listMessages(dir);
      return new MaildirMaildrop(entries, () => this.locked.delete(dir));
    } catch (err) {
      this.locked.delete(dir);
      throw err;
    }
  }
}

class MaildirMaildrop implements Maildrop {
  private released = false;

  constructor(
    private readonly entries: readonly Entry[],
    private readonly unlock: () => void,
  ) {}

  get messages(): readonly MaildropMessage[] {
    return this.entries;
  }

  async read(index: number): Promise<Buffer> {
    const entry = this.entries[index];
    if (!entry) throw new Error(`no message ${index} in this maildrop`);
    return withCrlf(await readFile(entry.path));
  }

  async commit(deleted: readonly number[]): Promise<void> {
    try {
      for (const index of deleted) {
        const entry = this.entries[index];
        // Already gone (another reader expunged it) is what we wanted.
        if (entry) await unlink(entry.path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
      }
    } finally {
      this.release();
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.unlock();
  }
}

async function listMessages(dir: string): Promise<Entry[]> {
  const found: { name: string; path: string }[] = [];
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = await readdir(join(dir, sub));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // nothing delivered yet
      throw err;
    }
    for (const name of names) if (!name.startsWith('.')) found.push({ name, path: join(dir, sub, name) });
  }
  // Delivery names start with the time in seconds and microseconds: sorting by them is oldest first.
  found.sort((a, b) => compareNames(a.name, b.name));
  const entries: Entry[] = [];
  for (const { name, path } of found) {
    const base = baseName(name);
    entries.push({ path, uidl: uidlOf(base), size: sizeFromName(base) ?? (await crlfSize(path)) });
  }
  return entries;
}

/** The part of a Maildir name before its info (":2,FLAGS"). */
export function baseName(name: string): string {
  const colon = name.indexOf(':');
  return colon < 0 ? name : name.slice(0, colon);
}

export function uidlOf(base: string): string {
  if (/^[\x21-\x7e]{1,70}$/.test(base)) return base;
  return createHash('sha256').update(base, 'utf8').digest('base64url');
}

function sizeFromName(base: string): number | undefined {
  const m = /,W=(\d+)(?:,|$)/.exec(base);
  return m ? Number(m[1]) : undefined;
}

async function crlfSize(path: string): Promise<number> {
  return withCrlf(await readFile(path)).length;
}

/** The message with every bare LF made CRLF (RFC 1939 3: lines end in CRLF on the wire). */
export function withCrlf(bytes: Buffer): Buffer {
  let bare = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a && (i === 0 || bytes[i - 1] !== 0x0d)) bare++;
  if (bare === 0) return bytes;
  const out = Buffer.alloc(bytes.length + bare);
  let o = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes.readUInt8(i);
    if (byte === 0x0a && (i === 0 || bytes[i - 1] !== 0x0d)) out[o++] = 0x0d;
    out[o++] = byte;
  }
  return out;
}

/** By the leading "<secs>.M<usecs>" of delivery names, numerically; then by the whole name. */
function compareNames(a: string, b: string): number {
  const ka = timeKey(a);
  const kb = timeKey(b);
  if (ka !== kb) return ka < kb ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function timeKey(name: string): bigint {
  const m = /^(\d+)\.M(\d+)/.exec(name) ?? /^(\d+)\./.exec(name);
  if (!m) return 0n;
  return BigInt(m[1] ?? '0') * 1_000_000n + BigInt(m[2] ?? '0');
}
