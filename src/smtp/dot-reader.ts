// Reads DATA content up to the end-of-data mark (RFC 5321 4.1.1.4) and undoes dot-stuffing
// (RFC 5321 4.5.2). Only CRLF "." CRLF ends the message, including a "." CRLF right after the 354:
// "\n.\n", "\r\n.\n", "\n.\r\n" and friends are message content. Accepting them as an end is the
// SMTP smuggling attack of 2023, where two servers disagree on where a message stops.
//
// The scan looks for CRLF "." with Buffer.indexOf and hands whole slices to the MessageBody; the
// only state kept between chunks is how much of CRLF "." CRLF has been seen at the chunk's end.

import type { MessageBody } from './message-body.js';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const LINE_START_DOT = Buffer.from('\r\n.');
const CR_ONLY = Buffer.from('\r');

/**
 * What the end of the data so far looks like:
 * 'text'      mid-line;
 * 'cr'        a CR (already handed to the body) that may start a CRLF;
 * 'line'      at the start of a line (after CRLF, or at the very start of the data);
 * 'dot'       a "." at the start of a line, held back: end mark or stuffing;
 * 'dot-cr'    "." CR at the start of a line, held back: one LF away from the end.
 */
type Tail = 'text' | 'cr' | 'line' | 'dot' | 'dot-cr';

export class DotReader {
  private tail: Tail = 'line';
  private finished = false;

  constructor(private readonly body: MessageBody) {}

  /** True once CRLF "." CRLF has been read. */
  get done(): boolean {
    return this.finished;
  }

  /** Reads from `chunk` at `offset`; returns where it stopped (just after the end mark, if found). */
  feed(chunk: Buffer, offset: number): number {
    let pos = offset;
    while (pos < chunk.length && !this.finished) {
      const octet = chunk[pos] as number; // pos < chunk.length (the loop bound); this runs per octet of DATA
      switch (this.tail) {
        case 'cr':
          this.tail = octet === LF ? 'line' : 'text';
          if (octet === LF) {
            this.body.append(chunk.subarray(pos, pos + 1));
            pos += 1;
          }
          break;
        case 'line':
          if (octet === DOT) {
            this.tail = 'dot';
            pos += 1;
          } else {
            this.tail = 'text';
          }
          break;
        case 'dot':
          if (octet === CR) {
            this.tail = 'dot-cr';
            pos += 1;
          } else {
            this.tail = 'text'; // a stuffed dot: dropped (RFC 5321 4.5.2)
          }
          break;
        case 'dot-cr':
          if (octet === LF) {
            this.finished = true;
            pos += 1;
          } else {
            // "." CR and no LF: the dot was stuffing, the CR is content (a bare CR, as it happens).
            this.body.append(CR_ONLY);
            this.tail = 'text';
          }
          break;
        case 'text':
          pos = this.scanText(chunk, pos);
          break;
      }
    }
    return pos;
  }

  /** Hands text up to the next line-start dot (or the chunk's end) to the body. */
  private scanText(chunk: Buffer, pos: number): number {
    const mark = chunk.indexOf(LINE_START_DOT, pos);
    if (mark !== -1) {
      this.body.append(chunk.subarray(pos, mark + 2));
      this.tail = 'dot';
      return mark + 3;
    }
    this.body.append(chunk.subarray(pos));
    const last = chunk[chunk.length - 1];
    if (last === CR) this.tail = 'cr';
    else if (last === LF && chunk.length - pos >= 2 && chunk[chunk.length - 2] === CR) this.tail = 'line';
    else this.tail = 'text';
    return chunk.length;
  }
}
