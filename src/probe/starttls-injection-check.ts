// STARTTLS command injection (CVE-2011-0411 and the 2021 NO STARTTLS findings): a command sent
// in clear text right behind STARTTLS, in the same packet, must be thrown away (RFC 3207 section
// 4.2). A server that keeps it in its buffer runs it after the handshake as if it came over TLS,
// which lets a man in the middle inject commands into the protected session.

import { replyLine } from '../mail/reply.js';
import type { ProbeConnection } from './probe-connection.js';
import type { Findings } from './report.js';
import type { TlsLimits } from './probe-connection.js';

export async function checkStartTlsInjection(f: Findings, conn: ProbeConnection, tls: TlsLimits, waitMs: number): Promise<void> {
  await conn.write('STARTTLS\r\nNOOP\r\n');
  const r = await conn.next('the reply to STARTTLS');
  if (r.code !== 220) {
    f.pass('starttls-injection', `STARTTLS with a command pipelined behind it is refused: "${replyLine(r)}".`);
    return;
  }
  if (conn.hasUnreadInput) {
    const extra = await conn.next();
    f.info('starttls-injection', `The server answered the pipelined command before TLS ("${replyLine(extra)}") instead of discarding it.`);
    return;
  }
  await conn.startTls(tls);
  const injected = await conn.replyWithin(waitMs);
  if (injected) {
    f.fail('starttls-injection', `A NOOP sent in clear text behind STARTTLS was run after the TLS handshake ("${replyLine(injected)}").`, 'Discard buffered input when TLS starts (RFC 3207 section 4.2); update the server software.');
  } else {
    f.pass('starttls-injection', 'A command pipelined behind STARTTLS is discarded, not run after the handshake.');
  }
}
