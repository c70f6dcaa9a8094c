// What the message and envelope need from the peer, and the message as it goes after DATA.

const DOT = 0x2e;
const LF = 0x0a;

/** Whether any octet has the high bit set: such a message needs 8BITMIME (RFC 6152). */
export function hasEightBit(message: Buffer): boolean {
  // i < length: the assertion only tells the compiler what the loop bound already says.
  for (let i = 0; i < message.length; i++) if (message[i]! > 0x7f) return true;
  return false;
}

/** Whether an address needs SMTPUTF8 (RFC 6531 section 3.3: non-ASCII local part or U-label). */
export function needsSmtpUtf8(address: string): boolean {
  return /[^\x00-\x7f]/.test(address);
}

/**
 * The DATA payload: every line starting with "." gets one more (RFC 5321 4.5.2), a final CRLF if
 * the message lacks one, and the terminating ".\r\n". The message is CRLF-terminated already
 * (the spool holds what our server accepted), so lines are split at LF.
 */
export function dotStuff(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  let lineStart = 0;
  while (lineStart < message.length) {
    if (message[lineStart] === DOT) {
      parts.push(message.subarray(start, lineStart), Buffer.from('.'));
      start = lineStart;
    }
    const lf = message.indexOf(LF, lineStart);
    if (lf === -1) break;
    lineStart = lf + 1;
  }
  parts.push(message.subarray(start));
  const endsWithCrlf = message.length >= 2 && message[message.length - 2] === 0x0d && message[message.length - 1] === LF;
  parts.push(Buffer.from(endsWithCrlf || message.length === 0 ? '.\r\n' : '\r\n.\r\n'));
  return Buffer.concat(parts);
}
