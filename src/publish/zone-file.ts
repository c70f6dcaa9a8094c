// Published records as zone-file text (RFC 1035 section 5.1), the form an operator pastes into a
// zone or a DNS provider's import. Names are absolute (with the final dot), so every line means
// the same in whichever zone it lands; a ";" comment before each record says what it is for, and
// what is not a record (notes, the MTA-STS policy) is a comment too, so the whole text pastes.

import type { DomainRecords, PublishedRecord } from './dns-records.js';

/** Comments are wrapped to stay readable in a terminal and an editor. */
const COMMENT_WIDTH = 100;

export function zoneFileText(result: DomainRecords): string {
  const lines: string[] = [
    `; DNS records for ${result.domain}, as this server's configuration has them.`,
    '; Zone-file lines with absolute names: paste each one into the zone that holds its name.',
  ];
  for (const note of result.notes) lines.push(';', ...commentLines(`NOTE: ${note}.`, ';       '));

  const width = Math.max(...result.records.map((r) => r.name.length + 1));
  let previousComment: string | undefined;
  for (const record of result.records) {
    // Records that share a purpose (the addresses of one name) share one comment.
    if (record.comment !== previousComment) lines.push('', ...commentLines(record.comment, ';   '));
    previousComment = record.comment;
    lines.push(zoneLine(record, width));
  }

  if (result.mtaSts !== undefined) {
    lines.push(
      '',
      ...commentLines(`The MTA-STS policy Postern serves at ${result.mtaSts.url} (not a DNS record: shown so you can check it):`, ';   '),
      ...result.mtaSts.policy.text.split('\r\n').filter((l) => l !== '').map((l) => `;   ${l}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** One record: `name. TTL IN TYPE RDATA`, the name padded to `width` so the columns line up. */
export function zoneLine(record: PublishedRecord, width = 0): string {
  return `${`${record.name}.`.padEnd(width)} ${record.ttl} IN ${record.type.padEnd(5)} ${rdata(record)}`;
}

function rdata(record: PublishedRecord): string {
  switch (record.type) {
    case 'A':
    case 'AAAA':
      return record.address;
    case 'MX':
      return `${record.preference} ${absolute(record.exchange)}`;
    case 'TXT':
      return record.strings.map(characterString).join(' ');
    case 'SRV':
      return `${record.priority} ${record.weight} ${record.port} ${absolute(record.target)}`;
    case 'CNAME':
      return absolute(record.target);
  }
}

/** "." is the root already (SRV's "not offered"); any other name gets its final dot. */
function absolute(name: string): string {
  return name === '.' ? '.' : `${name}.`;
}

/**
 * A quoted <character-string> (RFC 1035 section 5.1): '"' and '\' are escaped with '\', and an
 * octet that is not printable ASCII is written \DDD, so the line stays plain ASCII.
 */
export function characterString(text: string): string {
  let out = '"';
  for (const octet of Buffer.from(text, 'utf8')) {
    if (octet === 0x22 || octet === 0x5c) out += `\\${String.fromCharCode(octet)}`;
    else if (octet < 0x20 || octet > 0x7e) out += `\\${octet.toString().padStart(3, '0')}`;
    else out += String.fromCharCode(octet);
  }
  return `${out}"`;
}

/** `text` as ";" comment lines of at most COMMENT_WIDTH columns; lines after the first start with `indent`. */
function commentLines(text: string, indent: string): string[] {
  const lines: string[] = [];
  let prefix = '; ';
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && prefix.length + line.length + 1 + word.length > COMMENT_WIDTH) {
      lines.push(prefix + line);
      prefix = indent;
      line = '';
    }
    line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(prefix + line);
  return lines;
}
