// Open relay: would the server take mail from a stranger for a stranger? Each address form below
// fooled some server once (the forms swaks and the relay testers of the 1990s tried): source
// routes, the % hack, UUCP bang paths, quoted local parts, address literals, case and a trailing
// dot. Each is offered as one RCPT without AUTH; whatever the answer, RSET follows at once, so
// no message is ever sent: a 2xx to RCPT is the finding.

import { replyLine } from '../mail/reply.js';
import type { Findings } from './report.js';
import type { ProbeConnection } from './probe-connection.js';

/** Reserved names (RFC 2606): no real mailbox is ever behind them. */
export const EXTERNAL_SENDER = 'postern-probe@sender.example.net';
const REMOTE_DOMAIN = 'relay-test.example.com';
const REMOTE_USER = 'postern-probe';

export interface RelayForm {
  /** Stable name, the finding's check is "relay.<name>". */
  readonly name: string;
  readonly what: string;
  readonly sender: string;
  readonly recipient: string;
}

/** `localDomain`: a domain the server receives for; `serverAddress`: its IP address. */
export function relayForms(localDomain: string, serverAddress: string): RelayForm[] {
  const remote = `${REMOTE_USER}@${REMOTE_DOMAIN}`;
  const literal = serverAddress.includes(':') ? `[IPv6:${serverAddress}]` : `[${serverAddress}]`;
  const form = (name: string, what: string, recipient: string, sender = EXTERNAL_SENDER): RelayForm => ({ name, what, sender, recipient });
  return [
    form('plain', 'an external sender to an external recipient', remote),
    form('local-sender', 'a forged local sender to an external recipient', remote, `postmaster@${localDomain}`),
    form('percent-hack', 'the % hack (user%remote@local)', `${REMOTE_USER}%${REMOTE_DOMAIN}@${localDomain}`),
    form('bang-path', 'a UUCP bang path (remote!user@local)', `${REMOTE_DOMAIN}!${REMOTE_USER}@${localDomain}`),
    form('quoted-at', 'a quoted local part holding an @ ("user@remote"@local)', `"${remote}"@${localDomain}`),
    form('source-route', 'a source route (@local:user@remote, RFC 5321 4.1.2)', `@${localDomain}:${remote}`),
    form('double-at', 'two @ signs (user@remote@local)', `${remote}@${localDomain}`),
    form('address-literal', 'the % hack through the server\'s address literal (user%remote@[ip])', `${REMOTE_USER}%${REMOTE_DOMAIN}@${literal}`),
    form('remote-literal', 'a remote address literal (user@[192.0.2.1])', `${REMOTE_USER}@[192.0.2.1]`),
    form('upper-case', 'an external recipient in upper case', remote.toUpperCase()),
    form('trailing-dot', 'an external domain with a trailing dot', `${remote}.`),
  ];
}

/**
 * One form on `conn`. The reply codes decide: MAIL refused means the form could not be tried,
 * RCPT 2xx means relaying.
 */
export async function tryRelayForm(f: Findings, conn: ProbeConnection, form: RelayForm, tried: string[]): Promise<void> {
  const mail = await conn.command(`MAIL FROM:<${form.sender}>`);
  if (mail.code >= 500) {
    f.pass(`relay.${form.name}`, `Relay refused for ${form.what}: MAIL FROM:<${form.sender}> got "${replyLine(mail)}".`);
    await conn.command('RSET');
    return;
  }
  if (mail.code !== 250) {
    f.info(`relay.${form.name}`, `Not tried: MAIL FROM:<${form.sender}> was refused ("${replyLine(mail)}").`);
    await conn.command('RSET');
    return;
  }
  tried.push(form.recipient);
  const rcpt = await conn.command(`RCPT TO:<${form.recipient}>`);
  await conn.command('RSET');
  if (rcpt.code >= 200 && rcpt.code < 300) {
    f.fail(`relay.${form.name}`, `Open relay: RCPT TO:<${form.recipient}> (${form.what}) was accepted without AUTH ("${replyLine(rcpt)}").`, 'Relay only for authenticated clients and your own domains (Postfix: smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination; keep mynetworks to your own hosts).');
  } else {
    f.pass(`relay.${form.name}`, `Relay refused for ${form.what}: "${replyLine(rcpt)}".`);
  }
}
