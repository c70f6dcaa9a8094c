// Maildir delivery (https://cr.yp.to/proto/maildir.html): one Maildir per user under
// <mail root>/<domain>/<local part>/. A copy is written to tmp/, fsync'd, renamed into new/ and
// new/ is fsync'd: only then is it delivered, and a reader never sees a half-written file.
// Quarantined mail goes to the Junk folder in Maildir++ layout, as Dovecot reads it: a Maildir
// <maildir>/.Junk/ with an empty "maildirfolder" file, shown by IMAP as "Junk".
//
// Exactly once across crashes. The queue marks a mailbox as served in the spool after its copy is
// durable, and that mark rides along with the spool's next durable write (spool.ts): a crash between
// the two leaves a durable copy without a durable mark, and the restarted queue would file the
// message again. So each copy's name carries the queue id ("K<queue id>" in the delivery
// identifier, see uniqueName), and at startup, for the messages the spool gives back, the queue
// asks which unmarked mailboxes already hold their copy (earlierCopies): one readdir of new/ and
// cur/ (Dovecot moves a file there and appends ":2,FLAGS" but keeps the base name), in the INBOX
// and in .Junk, per mailbox, and only then. Normal delivery pays nothing for it: no readdir, no
// extra fsync. The other ways were dearer or weaker: a durable "about to deliver" record before
// each rename costs an fsync per copy on the hot path, and link() onto a fixed name only sees
// new/, not a copy Dovecot has already moved to cur/.
// Names stay unique (pid, counter and microseconds as before) even if a message is filed twice
// into one Maildir, so POP3 UIDLs (maildrop.ts: the base name) stay unique and never change.

import { close, constants, open as openFile, rename as renameFile, unlink as unlinkFile, writev } from 'node:fs';
import { mkdir, open, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { QueueId } from '../../mail/envelope.js';
import { maildirPath } from '../../mailbox/maildir-path.js';
import { baseName } from '../../mailbox/maildrop.js';
import { KeyedLimiter } from '../../util/keyed-limiter.js';
import type { RecentActivity } from '../../util/recent-activity.js';
import { unwritten } from '../../util/unwritten.js';
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
 * Deliveries into one Maildir at once while clients are sending. Creating and renaming files in
 * one directory serializes on the directory's lock in the kernel, so more writers only spin on it
 * and take CPU from the SMTP sessions (measured: acceptance at 100 sessions fell by half with 64
 * writers into one mailbox). Postfix's local(8) makes the same choice:
 * local_destination_concurrency_limit = 2. It is a trade, measured at 10 sessions into one
 * mailbox: with 8, deliveries kept pace with acceptance, but acceptance itself ran at half the
 * rate (more fsyncs beside the spool's make each of its commits longer, and every 250 waits for
 * one). With 2 the clients are answered first and the queue absorbs the burst.
 */
const DELIVERIES_PER_MAILDIR = 2;

/**
 * Deliveries into one Maildir at once when no message has been accepted for QUIET_MS: nobody
 * waits for the spool then, and the backlog a burst left drains in a fraction of the time
 * (with 8 at 100 sessions, 1.1 to 2.1 times the deliveries per second, at a quarter less CPU per
 * copy as more of them share each fsync of new/). The inverse of Postfix's in_flow_delay, which
 * slows clients while deliveries lag: here deliveries slow down while clients send.
 */
const DELIVERIES_PER_MAILDIR_QUIET = 8;
const QUIET_MS = 100;

/** How many deliveries into one Maildir may run now; without `accepting` to go by, the narrow number. */
export function deliveriesPerMaildir(accepting: RecentActivity | undefined): number {
  return accepting === undefined || accepting.within(QUIET_MS) ? DELIVERIES_PER_MAILDIR : DELIVERIES_PER_MAILDIR_QUIET;
}

/** Maildir++ folders delivery may file into, below the INBOX. */
export type MaildirFolder = 'Junk';

const FOLDERS: readonly MaildirFolder[] = ['Junk'];

/** What one copy is: the message it belongs to (named in the file name) and where it goes. */
export interface MaildirCopy {
  /** The message's queue id, so that a restart can find this copy (earlierCopies). */
  readonly queueId?: QueueId | undefined;
  /** Into this Maildir++ folder instead of the INBOX. */
  readonly folder?: MaildirFolder | undefined;
}

/** Our delivery identifier with a queue id: M<usecs>P<pid>Q<counter>K<queue id>, between the first two dots. */
const KEYED_NAME = /^\d+\.M\d+P\d+Q\d+K([0-9A-Za-z]+)\./;

/** The queue id a Maildir file name of ours carries (flags after ":" or not), if any. */
export function queueIdOfName(name: string): string | undefined {
  return KEYED_NAME.exec(baseName(name))?.[1];
}

export interface MaildirsOptions {
  /** Marked by the queue at every accepted message: deliveries stay narrow while it is recent. */
  readonly accepting?: RecentActivity | undefined;
}

export class Maildirs {
  private readonly perMaildir: KeyedLimiter;
  private readonly created = new Map<string, Promise<void>>();
  private readonly newDirs = new Map<string, DirectorySync>();
  private counter = 0;
  private readonly host: string;

  constructor(
    readonly mailRoot: string,
    hostname: string,
    opts: MaildirsOptions = {},
  ) {
    this.host = maildirHostname(hostname);
    const { accepting } = opts;
    this.perMaildir = new KeyedLimiter(() => deliveriesPerMaildir(accepting));
  }

  /**
   * Delivers one copy into the mailbox's new/ and resolves with its path once it is durable.
   * The copy starts with Return-Path (RFC 5321 4.4: added at final delivery) and Delivered-To
   * (which mailbox this copy is for; lets a later hop see a loop).
   */
  async deliver(mailbox: string, sender: string, message: Buffer, copy: MaildirCopy = {}): Promise<string> {
    const { folder, queueId } = copy;
    const inbox = maildirPath(this.mailRoot, mailbox);
    const dir = folder === undefined ? inbox : join(inbox, `.${folder}`);
    // The INBOX first: Dovecot takes a folder without its parent Maildir for a broken mailbox.
    if (folder !== undefined) await this.ensureMaildir(inbox, false);
    const final = await this.perMaildir.run(dir, () => this.writeIntoNew(dir, mailbox, sender, message, folder !== undefined, queueId));
    // The new name is durable once new/ is. That fsync is shared by every copy renamed into this
    // Maildir while it waits, and waited for outside the slot, so the next copy is being written
    // meanwhile.
    await this.newDir(dir).sync();
    return final;
  }

  /** Writes the copy to tmp/, makes its content durable and renames it into new/. */
  private async writeIntoNew(
    dir: string,
    mailbox: string,
    sender: string,
    message: Buffer,
    isFolder: boolean,
    queueId: QueueId | undefined,
  ): Promise<string> {
    await this.ensureMaildir(dir, isFolder);
    const prefix = Buffer.from(`Return-Path: <${headerAddress(sender)}>\r\nDelivered-To: ${headerAddress(mailbox)}\r\n`, 'utf8');
    const name = this.uniqueName(prefix.length + message.length, queueId);
    const final = join(dir, 'new', name);
    await writeDurably(join(dir, 'tmp', name), final, [prefix, message]);
    return final;
  }

  /**
   * Dovecot's name format, <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<size>: unique within
   * this process by the counter, across processes by the pid and time. S= (the file's size) and
   * W= (its size with CRLF line ends, what POP3 and IMAP report) let readers skip a stat and a
   * read; our copies have CRLF line ends already, so the two are equal. K<queue id> ends the
   * delivery identifier when the copy belongs to a queued message (a unique name may hold any
   * characters but "/" and ":", https://cr.yp.to/proto/maildir.html; queue ids are [0-9A-Za-z]).
   */
  private uniqueName(size: number, queueId: QueueId | undefined): string {
    const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    const secs = Math.floor(micros / 1_000_000);
    const usecs = micros % 1_000_000;
    const key = queueId === undefined ? '' : `K${queueId}`;
    return `${secs}.M${usecs}P${process.pid}Q${++this.counter}${key}.${this.host},S=${size},W=${size}`;
  }

  /**
   * Which of these messages already have a copy in the mailbox (INBOX or a folder, new/ or cur/):
   * for messages recovered after a crash, before they are delivered again. A copy is counted
   * only once it is durable: its content was written with O_DSYNC before its rename, and the directory
   * that holds its name is fsync'd here. Leftovers in tmp/ of these messages (a copy the crash
   * cut short before its rename) are removed: they were never delivered and never will be.
   * Call it before any delivery of these messages in this process.
   */
  async earlierCopies(mailbox: string, queueIds: ReadonlySet<QueueId>): Promise<Set<QueueId>> {
    const inbox = maildirPath(this.mailRoot, mailbox);
    const found = new Set<QueueId>();
    for (const dir of [inbox, ...FOLDERS.map((f) => join(inbox, `.${f}`))]) {
      for (const sub of ['new', 'cur']) {
        const names = await namesIn(join(dir, sub));
        const here = names.map(queueIdOfName).filter((id): id is QueueId => id !== undefined && queueIds.has(id));
        if (here.length === 0) continue;
        await fsyncDirectory(join(dir, sub));
        for (const id of here) found.add(id);
      }
      for (const name of await namesIn(join(dir, 'tmp'))) {
        const id = queueIdOfName(name);
        if (id !== undefined && queueIds.has(id)) await unlink(join(dir, 'tmp', name)).catch(() => undefined);
      }
    }
    return found;
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

/** Created for writing only, never over an existing file, each write durable when it returns. */
const CREATE_DURABLE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;

/**
 * Writes `chunks` into a new file `tmp`, durably, then renames it to `final`; on failure `tmp` is
 * removed. With O_DSYNC the write returns once the content and what is needed to read it back
 * (the size) are on disk, as an fdatasync after it would ensure (open(2), "synchronized I/O data
 * integrity completion"): four trips to libuv's thread pool per copy (open, writev, close,
 * rename), not five. The callback API, not fs/promises: at a hundred sessions the promise API's
 * FileHandle and its promise per call were a share of the event loop's time for each copy.
 */
function writeDurably(tmp: string, final: string, chunks: readonly Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => unlinkFile(tmp, () => reject(err));
    openFile(tmp, CREATE_DURABLE, 0o666, (err, fd) => {
      if (err) return reject(err);
      writeAll(fd, chunks, (writeErr) => {
        close(fd, (closeErr) => {
          const failed = writeErr ?? closeErr;
          if (failed) return fail(failed);
          renameFile(tmp, final, (renameErr) => (renameErr ? fail(renameErr) : resolve()));
        });
      });
    });
  });
}

/** writev until every byte is written: a regular file takes it whole, barring a full disk or a signal. */
function writeAll(fd: number, chunks: readonly Buffer[], done: (err: Error | null) => void): void {
  writev(fd, chunks as Buffer[], (err, written) => {
    if (err) return done(err);
    const rest = unwritten(chunks, written);
    if (rest.length === 0) return done(null);
    if (written === 0) return done(new Error('writev wrote nothing'));
    writeAll(fd, rest, done);
  });
}

/** A directory's entries; none if it does not exist (nothing was ever delivered there). */
async function namesIn(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
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
