// The Received header we prepend to every accepted message (RFC 5321 4.4; protocol names from the
// "with" registry, RFC 3848 and RFC 6531). It records the hop for the recipient and for loop and
// abuse investigations, so its facts come from the connection, never from the message.
//
//   Received: from client.example (unknown [192.0.2.1])
//   	by mx.example.net (Postern) with ESMTPS id 0VbgU2wk000Mropi
//   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)
//   	(authenticated as bob@example.net)
//   	for <alice@example.net>; Thu, 2 Jan 2025 03:04:05 +0000
//
// The "authenticated as" comment appears only when [submission] received_auth is on: it tells
// every recipient the sender's login name, which is a privacy cost (postern.example.toml).

import type { Envelope, QueueId } from '../mail/envelope.js';
import { rfc5322Date } from '../mail/date.js';

const MAX_LINE = 78; // RFC 5322 2.1.1: lines SHOULD be no more than 78 characters

export interface ReceivedOptions {
  readonly hostname: string;
  readonly queueId: QueueId;
  /** The client's verified reverse DNS name, when the server looked it up. */
  readonly reverseName?: string | undefined;
  /** Name the account the client authenticated as (RFC 4954 AUTH), if any. */
  readonly recordAuthUser?: boolean | undefined;
}

/** The header, folded, ending in CRLF. */
export function receivedHeader(envelope: Envelope, opts: ReceivedOptions): string {
  const a = envelope.arrival;
  const lines: string[][] = [
    [`from ${headerToken(a.helo) || 'unknown'}`, `(${headerToken(opts.reverseName ?? '') || 'unknown'} ${addressLiteral(a.clientIp)})`],
    [`by ${headerToken(opts.hostname)}`, '(Postern)', `with ${headerToken(a.protocol) || 'SMTP'}`, `id ${opts.queueId}`],
  ];
  if (a.tls) lines.push([`(using ${headerToken(a.tls.version)} with cipher ${headerToken(a.tls.cipher)})`]);
  if (opts.recordAuthUser && a.authUser) lines.push([`(authenticated as ${headerToken(a.authUser)})`]);
  const date = rfc5322Date(new Date(a.receivedAt));
  // One recipient only: naming several would tell each of them who else got a copy (Bcc).
  const only = envelope.recipients.length === 1 ? envelope.recipients[0] : undefined;
  if (only) {
    lines.push([`for <${headerToken(only.address)}>;`, date]);
  } else {
    const last = lines.at(-1);
    if (last) last[last.length - 1] += ';';
    lines.push([date]);
  }
  return fold('Received:', lines);
}

/**
 * Client-controlled text (HELO, addresses) made safe to place in a header: no CR, LF or other
 * control characters (header injection), no spaces, and no parentheses or angle brackets that
 * would end our comment or address early. Each such character becomes "?".
 */
export function headerToken(text: string): string {
  return text.slice(0, 255).replace(/[\u0000-\u0020\u007f()<>;\\"]/g, '?');
}

/** RFC 5321 4.1.3 address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
function addressLiteral(ip: string): string {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4mapped) return `[${v4mapped[1]}]`;
  if (ip.includes(':')) return `[IPv6:${headerToken(ip)}]`;
  return `[${headerToken(ip)}]`;
}

/**
 * One header line per group of clauses, folded with CRLF TAB (RFC 5322 2.2.3); a group that would
 * pass 78 characters is folded again between its clauses.
 */
function fold(name: string, groups: string[][]): string {
  let out = name;
  let line = name.length;
  groups.forEach((group, g) => {
    group.forEach((clause, c) => {
      const newLine = (g > 0 && c === 0) || (c > 0 && line + 1 + clause.length > MAX_LINE);
      if (newLine) {
        out += `\r\n\t${clause}`;
        line = 1 + clause.length;
      } else {
        out += ` ${clause}`;
        line += 1 + clause.length;
      }
    });
  });
  return `${out}\r\n`;
}
