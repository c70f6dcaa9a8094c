// Splits a text protocol's command stream (SMTP, POP3) into lines. Only CRLF ends a line (RFC 5321
// 2.3.8, RFC 1939 3): a bare LF or a bare CR is never a line end, because servers that disagree
// with each other about where a line ends are what command injection and SMTP smuggling exploit.
// Such a line is reported as bad as a whole.

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

export type BadLineReason = 'bare-newline' | 'nul' | 'too-long' | 'not-utf8';

export type LineEvent =
  | { readonly kind: 'line'; readonly text: string }
  | { readonly kind: 'bad'; readonly reason: BadLineReason };

export interface LineRead {
  /** Where reading stopped in the chunk. */
  readonly offset: number;
  /** The line (or the bad line) that ended, or undefined when the chunk ran out first. */
  readonly event: LineEvent | undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class LineReader {
  /** Pieces of a line that spans chunks. */
  private pieces: Buffer[] = [];
  /** The first this many pieces are copies of their own (see read). */
  private kept = 0;
  private length = 0;
  /** Whether the last byte taken (possibly at the end of the previous chunk) was CR. */
  private afterCr = false;
  private bareNewline = false;
  /** After "too long" was reported: drop bytes up to the next CRLF. */
  private discarding = false;

  /** @param maxLine longest line in octets including the CRLF (RFC 5321 4.5.3.1.4) */
  constructor(private readonly maxLine: number) {}

  /** Reads at most one line from `chunk` starting at `offset`. */
  read(chunk: Buffer, offset: number): LineRead {
    const result = this.readLine(chunk, offset);
    // A line still open keeps its pieces past this call; the chunk may be the caller's only
    // until it returns (server/shared-reads.ts).
    if (this.kept < this.pieces.length) this.keepPieces();
    return result;
  }

  private readLine(chunk: Buffer, offset: number): LineRead {
    let pos = offset;
    while (pos < chunk.length) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        this.take(chunk, pos, chunk.length);
        this.afterCr = chunk[chunk.length - 1] === CR;
        return { offset: chunk.length, event: this.overlong() };
      }
      const crlf = lf > pos ? chunk[lf - 1] === CR : this.afterCr;
      if (crlf) {
        if (lf > pos) this.take(chunk, pos, lf - 1);
        else this.dropTrailingCr();
        this.afterCr = false;
        const event = this.discarding ? undefined : (this.overlong() ?? this.finishLine());
        this.resetLine();
        if (event) return { offset: lf + 1, event };
      } else {
        // A bare LF is part of the line, which is now bad, but never its end.
        this.take(chunk, pos, lf + 1);
        this.bareNewline = true;
        this.afterCr = false;
        const event = this.overlong();
        if (event) return { offset: lf + 1, event };
      }
      pos = lf + 1;
    }
    return { offset: pos, event: undefined };
  }

  /** Forgets any partial line (after STARTTLS, RFC 3207 section 6). */
  reset(): void {
    this.resetLine();
  }

  private take(chunk: Buffer, from: number, to: number): void {
    if (this.discarding || to <= from) return;
    this.pieces.push(chunk.subarray(from, to));
    this.length += to - from;
  }

  private keepPieces(): void {
    for (let i = this.kept; i < this.pieces.length; i++) this.pieces[i] = Buffer.from(this.pieces[i] as Buffer);
    this.kept = this.pieces.length;
  }

  /** The CR of a CRLF split across chunks was taken with the previous chunk. */
  private dropTrailingCr(): void {
    const last = this.pieces[this.pieces.length - 1];
    if (this.discarding || !last) return;
    if (last.length === 1) this.pieces.pop();
    else this.pieces[this.pieces.length - 1] = last.subarray(0, last.length - 1);
    this.kept = Math.min(this.kept, this.pieces.length);
    this.length -= 1;
  }

  /** Reports a line over the limit once, as soon as it is known, so an endless line costs no memory. */
  private overlong(): LineEvent | undefined {
    if (this.discarding) return undefined;
    // A trailing CR may turn out to be half of the CRLF, which the limit already allows for.
    const content = this.length - (this.afterCr ? 1 : 0);
    if (content <= this.maxLine - 2) return undefined;
    this.discarding = true;
    this.pieces = [];
    this.kept = 0;
    this.length = 0;
    return { kind: 'bad', reason: 'too-long' };
  }

  private finishLine(): LineEvent {
    const [only] = this.pieces;
    const line = only !== undefined && this.pieces.length === 1 ? only : Buffer.concat(this.pieces);
    if (this.bareNewline || line.includes(CR)) return { kind: 'bad', reason: 'bare-newline' };
    if (line.includes(NUL)) return { kind: 'bad', reason: 'nul' };
    try {
      return { kind: 'line', text: utf8.decode(line) };
    } catch {
      return { kind: 'bad', reason: 'not-utf8' };
    }
  }

  private resetLine(): void {
    this.pieces = [];
    this.kept = 0;
    this.length = 0;
    this.afterCr = false;
    this.bareNewline = false;
    this.discarding = false;
  }
}
