// User enumeration: whether VRFY and EXPN (RFC 5321 3.5) confirm addresses, and whether RCPT
// answers a made-up local user differently from a real one (the address given with --rcpt).

import { randomBytes } from 'node:crypto';
import { replyLine, type Reply } from '../mail/reply.js';
import { EXTERNAL_SENDER } from './relay-check.js';
import type { ProbeConnection } from './probe-connection.js';
import type { Findings, ProbeRole } from './report.js';

export async function checkVrfyExpn(f: Findings, conn: ProbeConnection, localDomain: string): Promise<void> {
  const address = `postmaster@${localDomain}`;
  for (const verb of ['VRFY', 'EXPN'] as const) {
    const r = await conn.command(`${verb} ${verb === 'VRFY' ? address : 'postmaster'}`);
    const check = `enumeration.${verb.toLowerCase()}`;
    // 250/251 confirm an address; 252 is RFC 5321 3.5.3's "cannot VRFY, but will accept".
    if (r.code === 250 || r.code === 251) {
      f.warn(check, `${verb} answers with "${replyLine(r)}": anyone can check which addresses exist.`, `Disable ${verb} (Postfix: disable_vrfy_command = yes) or answer 252.`);
    } else {
      f.pass(check, `${verb} does not confirm addresses: "${replyLine(r)}".`);
    }
  }
}

export async function checkRcptDifference(f: Findings, conn: ProbeConnection, role: ProbeRole, rcpt: string, tried: string[]): Promise<void> {
  const domain = rcpt.slice(rcpt.lastIndexOf('@') + 1);
  const madeUp = `postern-probe-${randomBytes(6).toString('hex')}@${domain}`;
  /** The RCPT reply, or the MAIL reply when MAIL was refused already. */
  const ask = async (address: string): Promise<{ stage: 'mail' | 'rcpt'; reply: Reply }> => {
    const mail = await conn.command(`MAIL FROM:<${EXTERNAL_SENDER}>`);
    if (mail.code !== 250) {
      await conn.command('RSET');
      return { stage: 'mail', reply: mail };
    }
    tried.push(address);
    const r = await conn.command(`RCPT TO:<${address}>`);
    await conn.command('RSET');
    return { stage: 'rcpt', reply: r };
  };
  const realAnswer = await ask(rcpt);
  if (realAnswer.stage === 'mail') {
    if (realAnswer.reply.code >= 500) f.pass('enumeration.rcpt', `Without AUTH, MAIL FROM is refused ("${replyLine(realAnswer.reply)}"), so RCPT tells nothing.`);
    else f.info('enumeration.rcpt', `Not compared: MAIL FROM got "${replyLine(realAnswer.reply)}".`);
    return;
  }
  const fakeAnswer = await ask(madeUp);
  const real = realAnswer.reply;
  const fake = fakeAnswer.reply;
  const ok = (r: Reply): boolean => r.code >= 200 && r.code < 300;
  if (ok(real) === ok(fake)) {
    f.pass('enumeration.rcpt', `RCPT answers a made-up local user like ${rcpt} ("${replyLine(fake)}").`);
  } else if (role === 'mx') {
    // Refusing unknown recipients at RCPT is what an MX should do (no backscatter); it does let
    // anyone test addresses, which rate limits keep slow.
    f.info('enumeration.rcpt', `RCPT tells a real user (${rcpt}: "${replyLine(real)}") from a made-up one ("${replyLine(fake)}"), as an MX that refuses unknown users must.`);
  } else {
    f.warn('enumeration.rcpt', `Without AUTH, RCPT tells a real user (${rcpt}: "${replyLine(real)}") from a made-up one ("${replyLine(fake)}").`, 'Require AUTH before RCPT on the submission ports.');
  }
}
