// SMTP smuggling (CVE-2023-51764 and its kin): a server that ends DATA at a bare LF.LF or CR.CR
// lets a sender hide a second message, with another envelope, inside the first, which an
// outbound server relays as one. RFC 5321 4.1.1.4 says only CRLF.CRLF ends the data.
//
// The test sends one message, to --rcpt only. Each suspect sequence is written, and then the probe
// waits: a reply then means the server ended DATA there. Nothing follows a sequence until the
// wait is over, so no second message is ever smuggled; a server that takes the sequence as text
// gets the next line of the body and, in the end, CRLF.CRLF.

import { replyLine } from '../mail/reply.js';
import type { ProbeConnection } from './probe-connection.js';
import type { Findings } from './report.js';

export const SMUGGLING_SEQUENCES: readonly { readonly name: string; readonly shown: string; readonly bytes: string }[] = [
  { name: 'lf-dot-lf', shown: 'LF.LF', bytes: '\n.\n' },
  { name: 'cr-dot-cr', shown: 'CR.CR', bytes: '\r.\r' },
  { name: 'crlf-dot-lf', shown: 'CRLF.LF', bytes: '\r\n.\n' },
  { name: 'lf-dot-crlf', shown: 'LF.CRLF', bytes: '\n.\r\n' },
];

export async function checkSmuggling(
  f: Findings,
  conn: ProbeConnection,
  rcpt: string,
  host: string,
  waitMs: number,
  recordMessage: () => void,
): Promise<void> {
  const mail = await conn.command('MAIL FROM:<>');
  const rcptReply = mail.code === 250 ? await conn.command(`RCPT TO:<${rcpt}>`) : mail;
  if (rcptReply.code !== 250 && rcptReply.code !== 251) {
    f.info('smuggling', `Not tested: the test message to ${rcpt} was refused ("${replyLine(rcptReply)}").`);
    await conn.command('RSET');
    return;
  }
  const data = await conn.command('DATA');
  if (data.code !== 354) {
    f.info('smuggling', `Not tested: DATA was refused ("${replyLine(data)}").`);
    return;
  }
  recordMessage();
  const headers =
    `From: Postern probe <postmaster@${host}>\r\nTo: <${rcpt}>\r\nSubject: postern probe: SMTP smuggling test\r\n` +
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\nMessage-ID: <probe-${Date.now()}@${host}>\r\n\r\n` +
    'This message tests how the server ends DATA; it was sent by postern probe and needs no action.\r\n';
  await conn.write(headers);
  for (const [i, seq] of SMUGGLING_SEQUENCES.entries()) {
    await conn.write(`Before a bare ${seq.shown}:${seq.bytes}`);
    const early = await conn.replyWithin(waitMs);
    if (early) {
      if (early.code >= 200 && early.code < 300) {
        f.fail(`smuggling.${seq.name}`, `A bare ${seq.shown} ends DATA ("${replyLine(early)}"): a second, smuggled message could follow it.`, 'End DATA only at CRLF.CRLF (RFC 5321 4.1.1.4); Postfix: smtpd_forbid_bare_newline = normalize.');
      } else {
        f.pass(`smuggling.${seq.name}`, `A message with a bare ${seq.shown} is refused ("${replyLine(early)}").`);
      }
      for (const rest of SMUGGLING_SEQUENCES.slice(i + 1)) f.info(`smuggling.${rest.name}`, `Not tested: DATA already ended.`);
      await conn.command('RSET').catch(() => undefined);
      return;
    }
    f.pass(`smuggling.${seq.name}`, `A bare ${seq.shown} does not end DATA.`);
    await conn.write(`After the bare ${seq.shown}.\r\n`);
  }
  const final = await conn.command('.', 'the final CRLF.CRLF');
  if (final.code >= 200 && final.code < 300) {
    f.info('smuggling.message', `The test message to ${rcpt}, bare line ends kept as text, was accepted: "${replyLine(final)}".`);
  } else {
    f.pass('smuggling.message', `The test message to ${rcpt} was refused for its bare line ends: "${replyLine(final)}".`);
  }
}
