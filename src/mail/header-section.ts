// The header section of a message (RFC 5322 2.1): the lines before the first empty line. The
// loop check counts its Received fields, the sender check reads its From and Sender, and bounces
// and `postern queue show` return it alone; all of them find its end here, one way.
// Lines end in CRLF in the spool; a bare LF is accepted too, for messages from elsewhere.

/** A header field, unfolded (RFC 5322 2.2.3); the name as written, the value after the colon. */
export interface HeaderField {
  readonly name: string;
  readonly value: string;
}

/**
 * Where the empty line that ends the header section starts (`start`) and where the body begins
 * (`end`, after that line's own line break). Without an empty line the message is all header.
 */
export function headerSectionBounds(message: Buffer): { start: number; end: number } {
  let pos = 0;
  while (pos < message.length) {
    const lf = message.indexOf(0x0a, pos);
    if (lf < 0) break;
    const lineEnd = lf > pos && message[lf - 1] === 0x0d ? lf - 1 : lf;
    if (lineEnd === pos) return { start: pos, end: lf + 1 };
    pos = lf + 1;
  }
  return { start: message.length, end: message.length };
}

/** The header section including the empty line that ends it (what a DSN returns with RET=HDRS). */
export function headerSection(message: Buffer): Buffer {
  return message.subarray(0, headerSectionBounds(message).end);
}

/** The fields of the header section, unfolded, in order. */
export function readHeaderFields(message: Buffer): HeaderField[] {
  const text = message.subarray(0, headerSectionBounds(message).start).toString('utf8');
  const fields: { name: string; value: string }[] = [];
  let current: { name: string; value: string } | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (/^[ \t]/.test(line)) {
      // Unfolding removes only the line break (RFC 5322 2.2.3); a continuation of a line that was
      // not a field is dropped with it.
      if (current) current.value += line;
      continue;
    }
    current = undefined;
    const colon = line.indexOf(':');
    // obs-optional (RFC 5322 4.5) allows white space before the colon.
    const name = colon > 0 ? line.slice(0, colon).replace(/[ \t]+$/, '') : '';
    // Not a field (an mbox "From " line, garbage): skipped.
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
    current = { name, value: line.slice(colon + 1) };
    fields.push(current);
  }
  return fields;
}
