// AUTH (RFC 4954): which mechanisms are offered before and after TLS, whether AUTH before TLS is
// refused (section 4: a password must not cross the wire in clear), and with the operator's own
// account, a login with each mechanism we can speak and whether the server lets that login send
// as somebody else (a sender-login mismatch).

import { createHmac, randomBytes } from 'node:crypto';
import { replyLine, reply as makeReply, type Reply } from '../mail/reply.js';
import { ScramClient, ScramClientError } from '../sasl/scram-client.js';
import type { ProbeConnection } from './probe-connection.js';
import type { Findings, ProbeRole } from './report.js';

/** Mechanisms that carry the password itself, readable by anyone on the path without TLS. */
const CLEARTEXT_MECHANISMS = ['PLAIN', 'LOGIN'];
/** The mechanisms the probe can log in with. */
export const KNOWN_MECHANISMS = ['PLAIN', 'LOGIN', 'CRAM-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS'] as const;
export type KnownMechanism = (typeof KNOWN_MECHANISMS)[number];

export function offeredMechanisms(ext: ReadonlyMap<string, string>): string[] {
  const line = ext.get('AUTH');
  return line === undefined ? [] : line.toUpperCase().split(/\s+/).filter((m) => m !== '');
}

/**
 * AUTH before TLS. The credential is made up on the spot, in the reserved .invalid domain
 * (RFC 2606), so it can never be anybody's: what matters is whether the server looks at it.
 */
export async function checkAuthBeforeTls(f: Findings, conn: ProbeConnection, ext: ReadonlyMap<string, string>): Promise<void> {
  const mechanisms = offeredMechanisms(ext);
  const clear = mechanisms.filter((m) => CLEARTEXT_MECHANISMS.includes(m));
  if (clear.length > 0) {
    f.fail('auth.cleartext-offered', `AUTH ${clear.join(' and ')} is offered before TLS: passwords can be sent in clear text.`, 'Offer AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only = yes).');
  } else if (mechanisms.length > 0) {
    f.info('auth.cleartext-offered', `Before TLS the server offers AUTH ${mechanisms.join(' ')}, none of which sends the password itself.`);
  } else {
    f.pass('auth.cleartext-offered', 'No AUTH is offered before TLS.');
  }
  const dummy = Buffer.from(`\0postern-probe@dummy.invalid\0${randomBytes(12).toString('hex')}`).toString('base64');
  let r = await conn.command(`AUTH PLAIN ${dummy}`, 'AUTH PLAIN (made-up credential)');
  if (r.code === 334) r = await conn.command('*'); // RFC 4954 4: "*" cancels the exchange
  if (r.code === 235) {
    f.fail('auth.before-tls', 'AUTH before TLS accepted a made-up credential.', 'Fix the authentication backend, and refuse AUTH before TLS.');
  } else if (r.code === 535 || r.code === 334) {
    f.fail('auth.before-tls', `AUTH before TLS was processed (the made-up password was checked: "${replyLine(r)}"): a real password would have crossed the wire in clear.`, 'Refuse AUTH before STARTTLS (RFC 4954 section 4; Postfix: smtpd_tls_auth_only = yes).');
  } else if (r.code >= 500) {
    f.pass('auth.before-tls', `AUTH before TLS is refused: "${replyLine(r)}".`);
  } else {
    f.info('auth.before-tls', `AUTH before TLS got "${replyLine(r)}".`);
  }
}

export function checkAuthAfterTls(f: Findings, ext: ReadonlyMap<string, string>, role: ProbeRole): void {
  const mechanisms = offeredMechanisms(ext);
  if (mechanisms.length > 0) f.info('auth.mechanisms', `Over TLS the server offers AUTH ${mechanisms.join(' ')}.`);
  else if (role === 'mx') f.info('auth.mechanisms', 'No AUTH is offered on the MX port (mail clients use the submission ports).');
  else f.warn('auth.mechanisms', 'No AUTH is offered over TLS on a submission port: mail clients cannot log in.', 'Enable SMTP AUTH on the submission ports.');
}

/** One login; the final reply (235 on success). The password is never shown or counted in a transcript. */
export async function login(conn: ProbeConnection, mechanism: KnownMechanism, username: string, password: string): Promise<Reply> {
  const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
  switch (mechanism) {
    case 'PLAIN':
      return conn.command(`AUTH PLAIN ${b64(`\0${username}\0${password}`)}`, 'AUTH PLAIN ***');
    case 'LOGIN': {
      let r = await conn.command('AUTH LOGIN');
      if (r.code === 334) r = await conn.command(b64(username), '***');
      if (r.code === 334) r = await conn.command(b64(password), '***');
      return r;
    }
    case 'CRAM-MD5': {
      const r = await conn.command('AUTH CRAM-MD5');
      if (r.code !== 334) return r;
      // RFC 2195 section 2: the challenge is base64 text; the answer "user HEX(HMAC-MD5)".
      const challenge = Buffer.from(r.lines[0] ?? '', 'base64');
      const digest = createHmac('md5', password).update(challenge).digest('hex');
      return conn.command(b64(`${username} ${digest}`), '***');
    }
    case 'SCRAM-SHA-1':
    case 'SCRAM-SHA-256':
    case 'SCRAM-SHA-1-PLUS':
    case 'SCRAM-SHA-256-PLUS':
      return scramLogin(conn, mechanism, username, password);
  }
}

/**
 * RFC 5802 over RFC 4954: initial response, one challenge, then the server's signature, which
 * the client checks (a server that cannot prove it holds the keys is reported as a failed login).
 * -PLUS binds to the TLS session with tls-exporter (RFC 9266), which needs TLS 1.3.
 */
async function scramLogin(conn: ProbeConnection, mechanism: KnownMechanism, username: string, password: string): Promise<Reply> {
  const plus = mechanism.endsWith('-PLUS');
  const channelBinding = plus ? conn.channelBinding() : undefined;
  if (plus && !channelBinding) return makeReply(504, undefined, `${mechanism} needs TLS 1.3 for tls-exporter channel binding; not tried`);
  const client = new ScramClient({
    hash: mechanism.startsWith('SCRAM-SHA-256') ? 'sha256' : 'sha1',
    username,
    password,
    ...(channelBinding ? { channelBinding } : {}),
  });
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  const text = (r: Reply): string => Buffer.from(r.lines[0] ?? '', 'base64').toString('utf8');
  let r = await conn.command(`AUTH ${client.mechanism} ${b64(client.clientFirst())}`, `AUTH ${client.mechanism} ***`);
  if (r.code !== 334) return r;
  try {
    r = await conn.command(b64(client.clientFinal(text(r))), '***');
    if (r.code === 334) {
      client.verifyServerFinal(text(r));
      return await conn.command('');
    }
    return r;
  } catch (err) {
    if (!(err instanceof ScramClientError)) throw err;
    await conn.command('*').catch(() => undefined);
    return makeReply(535, undefined, `the probe ended the exchange: ${err.message}`);
  }
}
