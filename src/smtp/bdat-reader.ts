// Reads one BDAT chunk (RFC 3030 section 2): exactly `size` octets, raw, with no end mark and no
// dot-stuffing. The octets follow the command line at once, often in the same packet. A refused
// BDAT is still followed by its octets, so a reader without a body reads them into nothing: that
// keeps the next command from being taken out of the middle of message data.

import type { MessageBody } from './message-body.js';

export class BdatReader {
  private remaining: number;

  /** @param body where the octets go; undefined to discard them (a refused chunk) */
  constructor(
    readonly size: number,
    private readonly body: MessageBody | undefined,
  ) {
    this.remaining = size;
  }

  get done(): boolean {
    return this.remaining === 0;
  }

  /** Reads from `chunk` at `offset`; returns where it stopped. */
  feed(chunk: Buffer, offset: number): number {
    const take = Math.min(this.remaining, chunk.length - offset);
    if (take <= 0) return offset;
    this.body?.append(chunk.subarray(offset, offset + take));
    this.remaining -= take;
    return offset + take;
  }
}
