// Parses the <path> of MAIL FROM and RCPT TO (RFC 5321 4.1.2):
//   Path      = "<" [ A-d-l ":" ] Mailbox ">"
//   Mailbox   = Local-part "@" ( Domain / address-literal )
//   Local-part = Dot-string / Quoted-string
// UTF-8 is allowed wherever RFC 6531 3.3 allows it (atext, qtext, U-labels); whether the client
// may use it (the SMTPUTF8 parameter) is for the session to judge, see hasNonAscii().

import { isIPv4, isIPv6 } from 'node:net';

export interface Mailbox {
  /** The local part exactly as written; a quoted local part keeps its quotes. */
  readonly local: string;
  /** The domain as written: a hostname, or an address literal with its brackets. */
  readonly domain: string;
}

export interface PathArgument {
  /** undefined for the null path "<>" (MAIL only) and for "<Postmaster>" (RCPT only). */
  readonly mailbox: Mailbox | undefined;
  /** RFC 5321 4.1.1.3: "<Postmaster>" with no domain, which every server must accept. */
  readonly postmaster: boolean;
  /** Whatever follows the path: the ESMTP parameters, leading spaces removed. */
  readonly params: string;
}

// atext (RFC 5322 3.2.3) plus UTF8-non-ascii (RFC 6531 3.3).
const ATEXT = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~\\u0080-\\u{10FFFF}]";
const DOT_STRING = new RegExp(`${ATEXT}+(?:\\.${ATEXT}+)*`, 'uy');
// qtextSMTP and quoted-pairSMTP (RFC 5321 4.1.2), plus UTF8-non-ascii.
const QUOTED_STRING = /"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10FFFF}]|\\[\x20-\x7e])*"/uy;
const LET_DIG = '[A-Za-z0-9\\u0080-\\u{10FFFF}]';
const SUB_DOMAIN = `${LET_DIG}(?:[A-Za-z0-9\\-\\u0080-\\u{10FFFF}]*${LET_DIG})?`;
const DOMAIN = new RegExp(`${SUB_DOMAIN}(?:\\.${SUB_DOMAIN})*`, 'uy');
const ADDRESS_LITERAL = /\[[\x21-\x5a\x5e-\x7e]+\]/y;
const POSTMASTER = /<postmaster>/iy;

/** RFC 5321 4.5.3.1: local part 64 octets, domain 255, whole path 256. */
const MAX_LOCAL = 64;
const MAX_DOMAIN = 255;
const MAX_PATH = 256;

/**
 * Parses "<path> [params]". `allowNull` for MAIL FROM's "<>", `allowPostmaster` for RCPT TO's
 * "<Postmaster>". Returns undefined on any syntax error.
 */
export function parsePathArgument(
  text: string,
  options: { allowNull: boolean; allowPostmaster: boolean },
): PathArgument | undefined {
  const cursor = { pos: 0 };
  let mailbox: Mailbox | undefined;
  let postmaster = false;
  if (options.allowNull && text.startsWith('<>')) {
    cursor.pos = 2;
  } else if (options.allowPostmaster && matchAt(POSTMASTER, text, cursor) !== undefined) {
    postmaster = true;
  } else {
    mailbox = parsePath(text, cursor);
    if (!mailbox) return undefined;
  }
  const rest = text.slice(cursor.pos);
  if (rest !== '' && !rest.startsWith(' ')) return undefined;
  return { mailbox, postmaster, params: rest.trimStart() };
}

/** True when the text has anything outside ASCII, which needs SMTPUTF8 (RFC 6531 3.5). */
export function hasNonAscii(text: string): boolean {
  return /[^\x00-\x7f]/.test(text);
}

function parsePath(text: string, cursor: { pos: number }): Mailbox | undefined {
  const start = cursor.pos;
  if (text[cursor.pos] !== '<') return undefined;
  cursor.pos += 1;
  // A source route "@a,@b:" is parsed and then ignored (RFC 5321 4.1.1.3 and appendix C).
  if (text[cursor.pos] === '@') {
    for (;;) {
      if (text[cursor.pos] !== '@') return undefined;
      cursor.pos += 1;
      if (matchAt(DOMAIN, text, cursor) === undefined) return undefined;
      if (text[cursor.pos] === ',') cursor.pos += 1;
      else if (text[cursor.pos] === ':') break;
      else return undefined;
    }
    cursor.pos += 1;
  }
  const local = text[cursor.pos] === '"' ? matchAt(QUOTED_STRING, text, cursor) : matchAt(DOT_STRING, text, cursor);
  if (local === undefined || text[cursor.pos] !== '@') return undefined;
  cursor.pos += 1;
  const domain = text[cursor.pos] === '[' ? parseAddressLiteral(text, cursor) : matchAt(DOMAIN, text, cursor);
  if (domain === undefined || text[cursor.pos] !== '>') return undefined;
  cursor.pos += 1;
  if (octets(local) > MAX_LOCAL || octets(domain) > MAX_DOMAIN) return undefined;
  if (octets(text.slice(start, cursor.pos)) > MAX_PATH) return undefined;
  return { local, domain };
}

/** "[1.2.3.4]" or "[IPv6:...]" (RFC 5321 4.1.3); general literals have no use here. */
function parseAddressLiteral(text: string, cursor: { pos: number }): string | undefined {
  const literal = matchAt(ADDRESS_LITERAL, text, cursor);
  if (literal === undefined) return undefined;
  const inside = literal.slice(1, -1);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(inside) && isIPv4(inside)) return literal;
  const v6 = /^ipv6:/i.test(inside) ? inside.slice(5) : undefined;
  if (v6 !== undefined && /^[0-9A-Fa-f:.]+$/.test(v6) && isIPv6(v6)) return literal;
  return undefined;
}

function matchAt(pattern: RegExp, text: string, cursor: { pos: number }): string | undefined {
  pattern.lastIndex = cursor.pos;
  const m = pattern.exec(text);
  if (!m) return undefined;
  cursor.pos += m[0].length;
  return m[0];
}

function octets(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
