// What EHLO offers (RFC 5321 4.1.1.1) and the extensions a sender or mail client cares about.

import { replyLine, type Reply } from '../mail/reply.js';
import type { Findings } from './report.js';

/** Extensions reported as facts: whether offered is a choice, not a fault. */
const NOTED: readonly [string, string][] = [
  ['SMTPUTF8', 'internationalized addresses (RFC 6531)'],
  ['CHUNKING', 'BDAT (RFC 3030)'],
  ['DSN', 'delivery status notifications (RFC 3461)'],
  ['REQUIRETLS', 'REQUIRETLS (RFC 8689)'],
  ['8BITMIME', '8-bit message bodies (RFC 6152)'],
];

export function checkEhlo(f: Findings, reply: Reply, ext: ReadonlyMap<string, string>, stage: string): void {
  if (reply.code !== 250) {
    f.fail('ehlo.accepted', `EHLO was refused ${stage}: "${replyLine(reply)}".`, 'Accept EHLO (RFC 5321 4.1.1.1); without it no extension, not even STARTTLS, can be used.');
    return;
  }
  f.info('ehlo.extensions', `EHLO ${stage} offers: ${[...ext.entries()].map(([k, v]) => (v ? `${k} ${v}` : k)).join(', ') || 'no extensions'}.`);
  const size = ext.get('SIZE');
  if (size === undefined) {
    f.warn('ehlo.size', 'SIZE is not offered: senders learn the size limit only after sending the whole message.', 'Announce the message size limit with the SIZE extension (RFC 1870).');
  } else if (/^[1-9]\d*$/.test(size)) {
    f.pass('ehlo.size', `SIZE limit: ${size} octets (${(Number(size) / 1048576).toFixed(1)} MiB).`);
  } else {
    f.info('ehlo.size', 'SIZE is offered without a fixed limit.');
  }
  if (ext.has('PIPELINING')) f.pass('ehlo.pipelining', 'PIPELINING is offered.');
  else f.warn('ehlo.pipelining', 'PIPELINING is not offered: every command costs a round trip.', 'Offer PIPELINING (RFC 2920).');
  for (const [keyword, what] of NOTED) {
    f.info(`ehlo.${keyword.toLowerCase()}`, `${keyword} (${what}) is ${ext.has(keyword) ? '' : 'not '}offered.`);
  }
}
