// Replies from the server we deliver to, parsed from its byte stream. RFC 5321 4.2: "250-text"
// continues a multi-line reply, "250 text" (or a bare "250") ends it, and every line carries the
// same code. The peer is not trusted: a line longer than MAX_REPLY_LINE, a malformed line or a
// code that changes mid-reply is a protocol error, never an unbounded buffer.
// A peer's reply is a Reply like our own (src/mail/reply.ts): the code, the RFC 3463 enhanced code
// if the peer sent one, and the text of each line with both taken off (RFC 2034 puts the enhanced
// code on every line), so the queue reads reply.enhanced instead of parsing text again.

import type { Reply } from '../../mail/reply.js';

/** RFC 5321 4.5.3.1.5 allows 512 octets per reply line; real servers stay well below this. */
export const MAX_REPLY_LINE = 4096;
/** Lines in one reply (EHLO lists a few dozen at most). */
const MAX_REPLY_LINES = 200;

/** The peer broke the protocol; the connection cannot be trusted further. */
export class ReplySyntaxError extends Error {
  override readonly name = 'ReplySyntaxError';
}

const REPLY_LINE = /^([2-5][0-9][0-9])([ -]|$)(.*)$/s;
const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/;

/** Feeds on bytes, yields complete replies. */
export class ReplyParser {
  private partial = '';
  private pending: { code: number; lines: string[] } | undefined;

  /** Returns the replies completed by `chunk`; throws ReplySyntaxError on a broken stream. */
  push(chunk: Buffer): Reply[] {
    // latin1 keeps every byte as one char, so length checks count octets.
    this.partial += chunk.toString('latin1');
    const done: Reply[] = [];
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) !== -1) {
      const raw = this.partial.slice(0, nl);
      this.partial = this.partial.slice(nl + 1);
      // Be lenient with a bare LF from the peer (we only read here; nothing is relayed onwards).
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      const reply = this.line(Buffer.from(line, 'latin1').toString('utf8'));
      if (reply) done.push(reply);
    }
    if (this.partial.length > MAX_REPLY_LINE) throw new ReplySyntaxError(`reply line longer than ${MAX_REPLY_LINE} octets`);
    return done;
  }

  /** Bytes received after the last complete reply (must be none when TLS starts, RFC 3207 section 4). */
  get hasBufferedInput(): boolean {
    return this.partial.length > 0 || this.pending !== undefined;
  }

  private line(text: string): Reply | undefined {
    if (text.length > MAX_REPLY_LINE) throw new ReplySyntaxError(`reply line longer than ${MAX_REPLY_LINE} octets`);
    const m = REPLY_LINE.exec(text);
    if (!m) throw new ReplySyntaxError(`malformed reply line ${JSON.stringify(text.slice(0, 80))}`);
    const code = Number(m[1]);
    if (this.pending && this.pending.code !== code) {
      throw new ReplySyntaxError(`reply code changed from ${this.pending.code} to ${code} within one reply`);
    }
    const pending = (this.pending ??= { code, lines: [] });
    pending.lines.push(m[3] ?? '');
    if (pending.lines.length > MAX_REPLY_LINES) throw new ReplySyntaxError(`reply of more than ${MAX_REPLY_LINES} lines`);
    if (m[2] === '-') return undefined;
    this.pending = undefined;
    return finish(pending.code, pending.lines);
  }
}

function finish(code: number, lines: string[]): Reply {
  const first = ENHANCED.exec(lines[0] ?? '')?.[1];
  // RFC 3463 section 2: the enhanced code's class must match the reply's first digit.
  const enhanced = first !== undefined && first.startsWith(String(code).charAt(0)) ? first : undefined;
  if (enhanced === undefined) return { code, enhanced, lines };
  const prefix = new RegExp(`^${enhanced.replaceAll('.', '\\.')}(?:\\s+|$)`);
  return { code, enhanced, lines: lines.map((line) => line.replace(prefix, '')) };
}
