// The Authentication-Results header field (RFC 8601): how the verdict is written, and how it
// replaces any field that claims to be ours. A field with our authserv-id that came with the
// message was made by someone else (RFC 8601 section 5: such fields are removed before ours is
// added), and a mail reader that trusts our authserv-id would believe it.
//
// Syntax (section 2.2): authserv-id, then "; method=result (comment) ptype.property=value" per
// method. An authserv-id and a property value are RFC 2045 tokens or quoted-strings; a comment
// escapes its parentheses and backslashes. Long fields are folded at spaces (RFC 5322 2.2.3),
// which unfolding turns back into the same spaces.

import { headerSectionBounds } from '../mail/header-section.js';
import type { DmarcPolicy, DmarcVerdict, IprevVerdict, SenderAuthVerdict } from './verdict.js';

const FIELD_NAME = 'Authentication-Results';
/** RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters. */
const FOLD_AT = 78;

/** RFC 2045 section 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>. */
const TOKEN = /^[!#$%&'*+.0-9A-Z^_`a-z{|}~-]+$/;

/** A token as it is, anything else as a quoted-string (RFC 5322 section 3.2.4). */
export function headerValue(text: string): string {
  if (TOKEN.test(text)) return text;
  return `"${text.replace(/[\r\n]/g, ' ').replace(/(["\\])/g, '\\$1')}"`;
}

/** A comment's text, with what would end or nest it escaped (RFC 5322 section 3.2.2). */
export function headerComment(text: string): string {
  return `(${text.replace(/[\r\n]/g, ' ').replace(/([()\\])/g, '\\$1')})`;
}

/** One resinfo: "method=result (comment) ptype.property=value ...". */
export function formatResinfo(
  method: string,
  result: string,
  comment: string | undefined,
  properties: readonly (readonly [string, string | undefined])[],
): string {
  const parts = [`${method}=${result}`];
  if (comment !== undefined && comment !== '') parts.push(headerComment(comment));
  for (const [name, value] of properties) if (value !== undefined && value !== '') parts.push(`${name}=${headerValue(value)}`);
  return parts.join(' ');
}

/** RFC 7489 section 11.2 with the policy applied (policy.dmarc, as RFC 9989 section 9.1 registers it). */
export function dmarcResinfo(dmarc: DmarcVerdict, applied: DmarcPolicy | undefined): string {
  const details = [
    dmarc.policy !== undefined ? `p=${dmarc.policy}` : undefined,
    dmarc.pct < 100 ? `pct=${dmarc.pct}` : undefined,
    dmarc.comment,
  ].filter((d) => d !== undefined);
  return formatResinfo('dmarc', dmarc.result, details.join('; ') || undefined, [
    ['header.from', dmarc.domain],
    ['policy.dmarc', dmarc.result === 'fail' ? applied : undefined],
  ]);
}

/** RFC 8601 section 2.7.3: the address checked is reported as policy.iprev. */
export function iprevResinfo(iprev: IprevVerdict): string {
  return formatResinfo('iprev', iprev.result, iprev.name ?? iprev.comment, [['policy.iprev', iprev.ip]]);
}

/** The whole field, folded, ending in CRLF. */
export function authenticationResultsField(authservId: string, verdict: SenderAuthVerdict, applied: DmarcPolicy | undefined): string {
  const resinfos = [
    verdict.spf.resinfo,
    ...verdict.dkim.map((d) => d.resinfo),
    dmarcResinfo(verdict.dmarc, applied),
    verdict.arc.resinfo,
    iprevResinfo(verdict.iprev),
  ];
  const lines = [`${FIELD_NAME}: ${headerValue(authservId)};`, ...resinfos.map((r, i) => ` ${r}${i < resinfos.length - 1 ? ';' : ''}`)];
  return `${lines.map(fold).join('\r\n')}\r\n`;
}

/**
 * Folds one line at spaces so that each piece is at most FOLD_AT characters where a space
 * allows; a run without spaces (a long signature value) stays whole.
 */
export function fold(line: string): string {
  const out: string[] = [];
  let rest = line;
  while (rest.length > FOLD_AT) {
    // The first character is kept: a continuation line starts with its space (RFC 5322 2.2.3).
    let at = rest.lastIndexOf(' ', FOLD_AT);
    if (at <= 0) at = rest.indexOf(' ', FOLD_AT);
    if (at <= 0) break;
    out.push(rest.slice(0, at));
    rest = rest.slice(at);
  }
  out.push(rest);
  return out.join('\r\n');
}

/**
 * The authserv-id of an Authentication-Results value (RFC 8601 section 2.2), after any leading
 * white space and comments; undefined if it has none that can be read.
 */
export function authservIdOf(value: string): string | undefined {
  let i = skipCfws(value, 0);
  if (i === undefined) return undefined;
  if (value[i] === '"') {
    let text = '';
    for (i++; i < value.length; i++) {
      const c = value[i];
      if (c === '\\') text += value[++i] ?? '';
      else if (c === '"') return text;
      else text += c;
    }
    return undefined;
  }
  // A token; non-ASCII is let through so that a U-label authserv-id (RFC 8601 section 2.5) is read whole.
  const match = /^[^\s()<>@,;:\\"/[\]?=\x00-\x1f\x7f]+/.exec(value.slice(i));
  return match ? match[0] : undefined;
}

/** Index after white space and (nested) comments from `i`; undefined for an unclosed comment. */
function skipCfws(value: string, i: number): number | undefined {
  let depth = 0;
  for (; i < value.length; i++) {
    const c = value[i];
    if (depth > 0 && c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0 && c !== ' ' && c !== '\t' && c !== '\r' && c !== '\n') return i;
  }
  return depth === 0 ? i : undefined;
}

/**
 * The message with every Authentication-Results field that claims `authservId` removed (compared
 * case-insensitively, as domain names are) and `field` added on top; and how many were removed.
 * The header section is read as bytes (latin1), so nothing else in it changes by one octet.
 */
export function replaceAuthenticationResults(message: Buffer, authservId: string, field: string): { message: Buffer; removed: number } {
  const end = headerSectionBounds(message).start;
  const ours = authservId.toLowerCase();
  const kept: Buffer[] = [Buffer.from(field, 'utf8')];
  let removed = 0;
  let fieldStart = 0;
  let pos = 0;
  const closeField = (at: number): void => {
    if (at <= fieldStart) return;
    const raw = message.subarray(fieldStart, at);
    if (isOurField(raw, ours)) removed++;
    else kept.push(raw);
  };
  // A field is its first line and every continuation line (starting with a space or tab) after it.
  while (pos < end) {
    const lf = message.indexOf(0x0a, pos);
    const next = lf < 0 || lf >= end ? end : lf + 1;
    const continues = message[pos] === 0x20 || message[pos] === 0x09;
    if (!continues && pos > fieldStart) {
      closeField(pos);
      fieldStart = pos;
    }
    pos = next;
  }
  closeField(end);
  kept.push(message.subarray(end));
  return { message: Buffer.concat(kept), removed };
}

function isOurField(raw: Buffer, ours: string): boolean {
  const text = raw.toString('latin1');
  const colon = text.indexOf(':');
  if (colon < 0) return false;
  if (text.slice(0, colon).trim().toLowerCase() !== FIELD_NAME.toLowerCase()) return false;
  const id = authservIdOf(text.slice(colon + 1).replace(/\r?\n/g, ''));
  return id !== undefined && id.toLowerCase() === ours;
}
