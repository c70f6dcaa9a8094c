// Maildir delivery (https://cr.yp.to/proto/maildir.html): one Maildir per user under
// <mail root>/<domain>/<local part>/. A copy is written to tmp/, fsync'd, renamed into new/ and
// new/ is fsync'd: only then is it delivered, and a reader never sees a half-written file.
// Quarantined mail goes to the Junk folder in Maildir++ layout, as Dovecot reads it: a Maildir
// <maildir>/.Junk/ with an empty "maildirfolder" file, shown by IMAP as "Junk".

import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { maildirPath } from '../../mailbox/maildir-path.js';
import { KeyedLimiter } from '../../util/keyed-limiter.js';
import { DirectorySync, fsyncDirectory } from '../../spool/dir-sync.js';

/** Header text from an envelope address: no CR, LF or other controls, no angle brackets. */
function headerAddress(address: string): string {
  return address.replace(/[\u0000-\u001f\u007f<>]/g, '?');
}

/** Maildir file names may not contain "/" or ":" (and "," separates Dovecot's fields). */
function maildirHostname(hostname: string): string {
  return hostname.replace(/\//g, '\\057').replace(/:/g, '\\072').replace(/,/g, '\\054');
}

/**
 * Deliveries into one Maildir at once. Creating and renaming files in one directory serializes
 * on the directory's lock in the kernel, so more writers only spin on it and take CPU from the
 * SMTP sessions (measured: acceptance at 100 sessions fell by half with 64 writers into one
 * mailbox). Postfix's local(8) makes the same choice: local_destination_concurrency_limit = 2.
 */
const DELIVERIES_PER_MAILDIR = 2;

/** Maildir++ folders delivery may file into, below the INBOX. */
export type MaildirFolder = 'Junk';

export class Maildirs {
  private readonly perMaildir = new KeyedLimiter(DELIVERIES_PER_MAILDIR);
  private readonly created = new Map<string, Promise<void>>();
  private readonly newDirs = new Map<string, DirectorySync>();
  private counter = 0;
  private readonly host: string;

  constructor(
    readonly mailRoot: string,
    hostname: string,
  ) {
    this.host = maildirHostname(hostname);
  }

  /**
   * Delivers one copy into the mailbox's new/ and resolves with its path once it is durable.
   * The copy starts with Return-Path (RFC 5321 4.4: added at final delivery) and Delivered-To
   * (which mailbox this copy is for; lets a later hop see a loop).
   */
  async deliver(mailbox: string, sender: string, message: Buffer, folder?: MaildirFolder): Promise<string> {
    const inbox = maildirPath(this.mailRoot, mailbox);
    const dir = folder === undefined ? inbox : join(inbox, `.${folder}`);
    // The INBOX first: Dovecot takes a folder without its parent Maildir for a broken mailbox.
    if (folder !== undefined) await this.ensureMaildir(inbox, false);
    const final = await this.perMaildir.run(dir, () => this.writeIntoNew(dir, mailbox, sender, message, folder !== undefined));
    // The new name is durable once new/ is. That fsync is shared by every copy renamed into this
    // Maildir while it waits, and waited for outside the slot, so the next copy is being written
    // meanwhile.
    await this.newDir(dir).sync();
    return final;
  }

  /** Writes the copy to tmp/, makes its content durable and renames it into new/. */
  private async writeIntoNew(dir: string, mailbox: string, sender: string, message: Buffer, isFolder: boolean): Promise<string> {
    await this.ensureMaildir(dir, isFolder);
    const prefix = Buffer.from(`Return-Path: <${headerAddress(sender)}>\r\nDelivered-To: ${headerAddress(mailbox)}\r\n`, 'utf8');
    const name = this.uniqueName(prefix.length + message.length);
    const tmp = join(dir, 'tmp', name);
    const final = join(dir, 'new', name);
    const file = await open(tmp, 'wx');
    try {
      try {
        await file.writev([prefix, message]);
        await file.datasync();
      } finally {
        await file.close();
      }
      await rename(tmp, final);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return final;
  }

  /**
   * Dovecot's name format, <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<size>: unique within
   * this process by the counter, across processes by the pid and time. S= (the file's size) and
   * W= (its size with CRLF line ends, what POP3 and IMAP report) let readers skip a stat and a
   * read; our copies have CRLF line ends already, so the two are equal.
   */
  private uniqueName(size: number): string {
    const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    const secs = Math.floor(micros / 1_000_000);
    const usecs = micros % 1_000_000;
    return `${secs}.M${usecs}P${process.pid}Q${++this.counter}.${this.host},S=${size},W=${size}`;
  }

  private newDir(dir: string): DirectorySync {
    let sync = this.newDirs.get(dir);
    if (!sync) {
      sync = new DirectorySync(join(dir, 'new'));
      this.newDirs.set(dir, sync);
    }
    return sync;
  }

  private ensureMaildir(dir: string, isFolder: boolean): Promise<void> {
    let ready = this.created.get(dir);
    if (!ready) {
      ready = createMaildir(dir, isFolder);
      this.created.set(dir, ready);
      ready.catch(() => this.created.delete(dir));
    }
    return ready;
  }
}

/**
 * Creates tmp/, new/ and cur/ (and a folder's "maildirfolder" marker, Maildir++); new directories
 * are made durable up to the first existing one.
 */
async function createMaildir(dir: string, isFolder: boolean): Promise<void> {
  const made: string[] = [];
  for (const sub of ['tmp', 'new', 'cur']) {
    const first = await mkdir(join(dir, sub), { recursive: true });
    if (first !== undefined) made.push(first);
  }
  if (isFolder) {
    // "a": created if missing, left alone if Dovecot made it first.
    await (await open(join(dir, 'maildirfolder'), 'a')).close();
  }
  if (made.length === 0) {
    if (isFolder) await fsyncDirectory(dir);
    return;
  }
  // A delivered file's name is durable only if every directory created above it is too:
  // fsync each parent, from the Maildir up to the parent of the highest new directory.
  const stop = dirname(made.reduce((a, b) => (a.length <= b.length ? a : b)));
  for (let at = dir; ; at = dirname(at)) {
    await fsyncDirectory(at);
    if (at === stop || at === dirname(at)) break;
  }
}
