// Bytes from the client that a session (SMTP, POP3) has not acted on yet. Commands are handled one
// at a time and may wait on policy, a password hash or the disk; what a pipelining client sends
// meanwhile waits here. Backpressure: past a high-water mark the socket is paused, so a client
// cannot make us buffer without bound; it resumes once the session has worked through the backlog.

/** The two things the queue asks of the connection. */
export interface Flow {
  pause(): void;
  resume(): void;
}

/** Stop reading from the socket while this much input waits unprocessed. */
const HIGH_WATER = 1024 * 1024;

export class InputQueue {
  private chunks: Buffer[] = [];
  private offset = 0;
  private buffered = 0;
  private paused = false;

  constructor(
    private readonly io: Flow,
    private readonly highWater = HIGH_WATER,
  ) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (!this.paused && this.buffered > this.highWater) {
      this.paused = true;
      this.io.pause();
    }
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
    }
  }

  /** The session caught up: resume reading if the backlog is below the mark again. */
  caughtUp(): void {
    if (this.paused && this.buffered < this.highWater) this.resume();
  }

  /** Forgets all unread input (STARTTLS, RFC 3207 6; STLS, RFC 2595 4; or the end of the session). */
  clear(opts: { resume: boolean }): void {
    this.chunks = [];
    this.offset = 0;
    this.buffered = 0;
    if (this.paused && opts.resume) this.resume();
  }

  private resume(): void {
    this.paused = false;
    this.io.resume();
  }
}
