// Bytes from the client that the session has not acted on yet. Commands are handled one at a time
// and some wait on the maildrop or a password hash; what a pipelining client (RFC 2449 6.6) sends
// meanwhile waits here, up to a bound: past it the client is not pipelining but flooding.

/** More unread input than this ends the session (maxCommands lines fit many times over). */
export const MAX_PENDING_INPUT = 1024 * 1024;

export class InputQueue {
  private chunks: Buffer[] = [];
  private offset = 0;
  private pending = 0;

  /** Queues a chunk; false when that would put more than MAX_PENDING_INPUT octets in the queue. */
  push(chunk: Buffer): boolean {
    if (this.pending + chunk.length > MAX_PENDING_INPUT) return false;
    this.chunks.push(chunk);
    this.pending += chunk.length;
    return true;
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
    this.pending -= octets;
    this.offset += octets;
    if (this.offset >= chunk.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }

  /** Forgets all unread input (STLS, RFC 2595 4; or the end of the session). */
  clear(): void {
    this.chunks = [];
    this.offset = 0;
    this.pending = 0;
  }
}
