// POP3 responses (RFC 1939 3): a status line "+OK text" or "-ERR text", ended by CRLF; after some
// +OK lines a multi-line body follows, ended by a line holding only ".", in which any line that
// starts with "." gets another "." in front (byte-stuffing). RFC 2449 8 adds a response code in
// brackets after -ERR; RFC 5034 4 adds "+ <base64>" SASL challenges.
//
// Responses are values; the session formats each one exactly once, here.

import { headerSectionBounds } from '../mail/header-section.js';

/** RFC 2449 8 (IN-USE, LOGIN-DELAY), RFC 3206 (SYS/TEMP, SYS/PERM, AUTH). */
export type RespCode = 'AUTH' | 'SYS/TEMP' | 'SYS/PERM' | 'IN-USE';

export type Pop3Response =
  | { readonly kind: 'ok'; readonly text: string }
  | { readonly kind: 'err'; readonly code: RespCode | undefined; readonly text: string }
  /** "+OK text", then these lines (capabilities, scan listings), then ".". */
  | { readonly kind: 'lines'; readonly text: string; readonly lines: readonly string[] }
  /** "+OK text", then the message octets, byte-stuffed, then ".". */
  | { readonly kind: 'message'; readonly text: string; readonly data: Buffer }
  /** "+ <base64>" (RFC 5034 4); an empty challenge is "+ ". */
  | { readonly kind: 'challenge'; readonly data: Buffer };

export function ok(text: string): Pop3Response {
  return { kind: 'ok', text };
}

export function err(text: string, code?: RespCode): Pop3Response {
  return { kind: 'err', code, text };
}

const CRLF = Buffer.from('\r\n');
const END = Buffer.from('.\r\n');

/** The response as it goes on the wire. */
export function formatResponse(r: Pop3Response): string | Buffer {
  switch (r.kind) {
    case 'ok':
      return r.text === '' ? '+OK\r\n' : `+OK ${r.text}\r\n`;
    case 'err':
      return r.code === undefined ? `-ERR ${r.text}\r\n` : `-ERR [${r.code}] ${r.text}\r\n`;
    case 'lines':
      return `+OK ${r.text}\r\n${r.lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n')}${r.lines.length > 0 ? '\r\n' : ''}.\r\n`;
    case 'message':
      return Buffer.concat([Buffer.from(`+OK ${r.text}\r\n`), byteStuff(r.data), END]);
    case 'challenge':
      return `+ ${r.data.toString('base64')}\r\n`;
  }
}

/**
 * RFC 1939 3: a "." that begins a line is doubled, so no line of the message can be taken for the
 * end of the response. A "." after a bare LF is doubled too: a lenient client may take the bare
 * LF for a line end, and the message must not be able to end the response early for it either.
 * The result ends with CRLF, so that the terminating "." is on a line of its own.
 */
export function byteStuff(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  let lineStart = 0;
  for (;;) {
    if (data[lineStart] === 0x2e) {
      parts.push(data.subarray(start, lineStart), Buffer.from('.'));
      start = lineStart;
    }
    const lf = data.indexOf(0x0a, lineStart);
    if (lf < 0) break;
    lineStart = lf + 1;
  }
  parts.push(data.subarray(start));
  if (data.length > 0 && !(data[data.length - 1] === 0x0a && data[data.length - 2] === 0x0d)) parts.push(CRLF);
  return Buffer.concat(parts);
}

/**
 * What TOP n m sends (RFC 1939 7): the header section, the empty line that ends it, and the first
 * `lines` lines of the body. A message without an empty line is all header.
 */
export function topOfMessage(message: Buffer, lines: number): Buffer {
  const { end } = headerSectionBounds(message);
  let pos = end;
  for (let i = 0; i < lines && pos < message.length; i++) {
    const lf = message.indexOf(0x0a, pos);
    pos = lf < 0 ? message.length : lf + 1;
  }
  return message.subarray(0, pos);
}
