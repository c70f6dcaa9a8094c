// Reading a delivered message back from a Maildir file: its header block and its body, with line
// ends normalized to LF (Maildir files conventionally use LF; CRLF is tolerated here).

export interface StoredMessage {
  /** Unfolded header fields, in order: [name, value]. */
  readonly headers: readonly (readonly [string, string])[];
  /** Everything after the blank line, LF line ends. */
  readonly body: string;
}

export function parseStoredMessage(text: string): StoredMessage {
  const lf = text.replace(/\r\n/g, '\n');
  const split = lf.indexOf('\n\n');
  const head = split < 0 ? lf : lf.slice(0, split);
  const body = split < 0 ? '' : lf.slice(split + 2);
  // RFC 5322 2.2.3: a line starting with white space continues the previous field.
  const unfolded = head.replace(/\n(?=[ \t])/g, '');
  const headers = unfolded
    .split('\n')
    .filter((line) => line.includes(':'))
    .map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon), line.slice(colon + 1).trim()] as const;
    });
  return { headers, body };
}

/** Values of every field named `name` (case-insensitive), in order. */
export function headerValues(message: StoredMessage, name: string): string[] {
  const wanted = name.toLowerCase();
  return message.headers.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
}
