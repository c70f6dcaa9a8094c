// SMTP AUTH (RFC 4954): when the command may be used, and one SASL exchange from the AUTH line to
// 235 or 535. The mechanisms themselves are step machines in src/sasl/; this file speaks SMTP
// around them (base64, "334", "*", reply codes) and asks the AuthGuard about password guessing.
// The session (session.ts) owns the input mode; it hands each response line to AuthExchange.

import { reply, type Reply } from '../mail/reply.js';
import { SaslConversation, openExchange, type ConversationEnd, type ConversationOptions, type ConversationTurn } from '../sasl/conversation.js';
import type { SaslContext, SaslMechanism } from '../sasl/mechanism.js';

export { SASL_MAX_LINE } from '../sasl/conversation.js';

export const AUTH_SUCCESSFUL = reply(235, '2.7.0', 'Authentication successful');
/** The same reply for an unknown user, a wrong password and a locked account (no enumeration). */
export const AUTH_FAILED = reply(535, '5.7.8', 'Authentication credentials invalid');
export const AUTH_CANCELLED = reply(501, '5.0.0', 'Authentication cancelled');
export const AUTH_MALFORMED = reply(501, '5.5.2', 'Malformed authentication response');
const NOT_BASE64 = reply(501, '5.5.2', 'Cannot decode the response as base64');
const LINE_TOO_LONG = reply(500, '5.5.6', 'Authentication Exchange line is too long');

/** What decides whether AUTH may start now. */
export interface AuthState {
  readonly offered: 'never' | 'after-tls';
  readonly tls: boolean;
  readonly ehlo: boolean;
  readonly authenticated: boolean;
  readonly inTransaction: boolean;
}

/** Why AUTH cannot start now, or undefined when it can. */
export function refuseAuth(state: AuthState): Reply | undefined {
  if (state.offered === 'never') return reply(502, '5.5.1', 'AUTH is not offered here');
  // RFC 4954 4 and RFC 8314: never take a password over an unencrypted connection.
  if (!state.tls) return reply(530, '5.7.0', 'Must issue a STARTTLS command first');
  // AUTH is a service extension: only EHLO negotiates it (RFC 4954 3).
  if (!state.ehlo) return reply(503, '5.5.1', 'Send EHLO first');
  // RFC 4954 4: once authenticated, further AUTH commands are refused.
  if (state.authenticated) return reply(503, '5.5.1', 'Already authenticated');
  // RFC 4954 4: AUTH is not permitted during a mail transaction.
  if (state.inTransaction) return reply(503, '5.5.1', 'AUTH is not permitted during a mail transaction');
  return undefined;
}

export type AuthOpening =
  | { readonly kind: 'refused'; readonly reply: Reply }
  | { readonly kind: 'open'; readonly mechanism: SaslMechanism; readonly initialResponse: Buffer | undefined };

/** Parses "mechanism [initial-response]" against the mechanisms offered on this connection. */
export function openAuth(argument: string, offered: readonly SaslMechanism[]): AuthOpening {
  const words = argument.split(' ');
  if (words.length > 2 || words.some((w) => w === '')) {
    return { kind: 'refused', reply: reply(501, '5.5.4', 'Syntax: AUTH <mechanism> [initial-response]') };
  }
  const opening = openExchange(words[0] ?? '', words[1], offered);
  switch (opening.kind) {
    case 'open':
      return opening;
    case 'unknown-mechanism':
      return { kind: 'refused', reply: reply(504, '5.5.4', 'Unrecognized authentication type') };
    case 'not-base64':
      return { kind: 'refused', reply: NOT_BASE64 };
  }
}

/** What the session does next: send a challenge and wait, or send the final reply. */
export type AuthTurn =
  | { readonly kind: 'challenge'; readonly reply: Reply }
  | { readonly kind: 'authenticated'; readonly account: string; readonly reply: Reply }
  | { readonly kind: 'ended'; readonly reply: Reply };

export type AuthExchangeOptions = ConversationOptions;

/** The SMTP replies of an exchange that ended without a login. */
const ENDINGS: Record<ConversationEnd, Reply> = {
  failed: AUTH_FAILED,
  cancelled: AUTH_CANCELLED,
  malformed: AUTH_MALFORMED,
  'not-base64': NOT_BASE64,
  'line-too-long': LINE_TOO_LONG,
};

/** One AUTH exchange in SMTP's words (src/sasl/conversation.ts does the SASL part). */
export class AuthExchange extends SaslConversation<AuthTurn> {
  constructor(mechanism: SaslMechanism, ctx: SaslContext, opts: AuthExchangeOptions) {
    super(mechanism, ctx, opts, smtpTurn);
  }
}

function smtpTurn(turn: ConversationTurn): AuthTurn {
  switch (turn.kind) {
    case 'challenge':
      // "334 <base64>"; an empty challenge is "334 " (RFC 4954 4). No enhanced code on 334.
      return { kind: 'challenge', reply: reply(334, undefined, turn.data.toString('base64')) };
    case 'authenticated':
      return { kind: 'authenticated', account: turn.account, reply: AUTH_SUCCESSFUL };
    case 'ended':
      return { kind: 'ended', reply: ENDINGS[turn.why] };
  }
}
