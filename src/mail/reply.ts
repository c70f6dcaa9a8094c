// SMTP replies and the one error type that turns into a reply.
// Every reply carries an RFC 3463 enhanced status code (ENHANCEDSTATUSCODES, RFC 2034),
// except the greeting and replies to EHLO/HELO, where RFC 2034 section 3 leaves it out.

export interface Reply {
  /** Three-digit reply code (RFC 5321 section 4.2). */
  readonly code: number;
  /** Enhanced status code such as "5.1.1", or undefined where none belongs (greeting, EHLO). */
  readonly enhanced?: string | undefined;
  /** One string per line of a (possibly multi-line) reply. */
  readonly lines: readonly string[];
}

export function reply(code: number, enhanced: string | undefined, ...lines: string[]): Reply {
  return { code, enhanced, lines: lines.length > 0 ? lines : [''] };
}

/** Renders a reply as it goes on the wire: "250-first\r\n250 last\r\n". */
export function formatReply(r: Reply): string {
  let out = '';
  const last = r.lines.length - 1;
  r.lines.forEach((line, i) => {
    const sep = i === last ? ' ' : '-';
    const text = r.enhanced !== undefined ? `${r.enhanced} ${line}` : line;
    out += `${r.code}${sep}${text}\r\n`;
  });
  return out;
}

/** One line, as logs, DSNs and `postern queue` show a reply: "550 5.1.1 No such user". */
export function replyLine(r: Reply): string {
  const text = r.lines.join(' ').trim();
  return [String(r.code), r.enhanced, text].filter((part) => part !== undefined && part !== '').join(' ');
}

/**
 * An error safe to show the client: code, enhanced code and text go on the wire; `cause` goes only
 * to the log. Anything thrown that is not an SmtpError becomes "451 4.3.0" (see toReply).
 */
export class SmtpError extends Error {
  readonly reply: Reply;
  constructor(code: number, enhanced: string, text: string, options?: { cause?: unknown }) {
    super(`${code} ${enhanced} ${text}`, options);
    this.name = 'SmtpError';
    this.reply = reply(code, enhanced, text);
  }
}

export const INTERNAL_ERROR: Reply = reply(451, '4.3.0', 'Local error in processing, try again later');

/** Maps anything thrown by a handler to the reply the client sees; internals never leak. */
export function toReply(err: unknown): Reply {
  return err instanceof SmtpError ? err.reply : INTERNAL_ERROR;
}
