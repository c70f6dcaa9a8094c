// Bytes from the client that a session (SMTP, POP3) has not acted on yet. Commands are handled one
// at a time and may wait on policy, a password hash or the disk; what a pipelining client sends
// meanwhile waits here. Backpressure: past a high-water mark the socket is paused, so a client
// cannot make us buffer without bound; it resumes once the session has worked through the backlog.
// A chunk may be the caller's only until it returns (server/shared-reads.ts): keep() copies what
// is left of it.

/** The two things the queue asks of the connection. */
export interface Flow {
  pause(): void;
  resume(): void;
}

/** Stop reading from the socket while this much input waits unprocessed. */
const HIGH_WATER = 1024 * 1024;

export class InputQueue {
  private chunks: Buffer[] = [];
  /** The last this many chunks are the caller's, not copied yet (see keep). */
  private borrowed = 0;
  private offset = 0;
  private buffered = 0;
  private paused = false;

  constructor(
    private readonly io: Flow,
    private readonly highWater = HIGH_WATER,
  ) {}

  /** Queues `chunk`, which stays the caller's until keep() is called. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.borrowed++;
    this.buffered += chunk.length;
    if (!this.paused && this.buffered > this.highWater) {
      this.paused = true;
      this.io.pause();
    }
  }

  /**
   * Copies the unread part of every chunk pushed since the last keep(): after this, the caller
   * may reuse their memory. What was read meanwhile is not copied at all.
   */
  keep(): void {
    const count = this.chunks.length;
    for (let i = Math.max(0, count - this.borrowed); i < count; i++) {
      const chunk = this.chunks[i] as Buffer;
      const start = i === 0 ? this.offset : 0;
      this.chunks[i] = Buffer.from(chunk.subarray(start));
      if (i === 0) this.offset = 0;
    }
    this.borrowed = 0;
  }

  /** The oldest unread chunk and where its unread part starts; undefined when all is read. */
  peek(): { readonly chunk: Buffer; readonly offset: number } | undefined {
    const chunk = this.chunks[0];
    return chunk === undefined ? undefined : { chunk, offset: this.offset };
  }

  /** Marks `octets` of the oldest chunk as read. */
  consume(octets: number): void {
    const chunk = this.chunks[0];
    if (chunk === undefined) return;
    this.buffered -= octets;
    this.offset += octets;
    if (this.offset >= chunk.length) {
      this.chunks.shift();
      this.offset = 0;
      this.borrowed = Math.min(this.borrowed, this.chunks.length);
    }
  }

  /** The session caught up: resume reading if the backlog is below the mark again. */
  caughtUp(): void {
    if (this.paused && this.buffered < this.highWater) this.resume();
  }

  /** Forgets all unread input (STARTTLS, RFC 3207 6; STLS, RFC 2595 4; or the end of the session). */
  clear(opts: { resume: boolean }): void {
    this.chunks = [];
    this.borrowed = 0;
    this.offset = 0;
    this.buffered = 0;
    if (this.paused && opts.resume) this.resume();
  }

  private resume(): void {
    this.paused = false;
    this.io.resume();
  }
}
