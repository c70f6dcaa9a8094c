// POP3 AUTH (RFC 5034): one SASL exchange, from the AUTH line to +OK or -ERR. The exchange
// itself (base64, "*" to cancel, the brute-force guard) is src/sasl/conversation.ts, shared with
// SMTP AUTH; this file says it in POP3's words ("+ " challenges, -ERR with RFC 2449 codes).

import {
  SaslConversation,
  openExchange,
  type ConversationEnd,
  type ConversationOptions,
  type ConversationTurn,
} from '../sasl/conversation.js';
import type { SaslContext, SaslMechanism } from '../sasl/mechanism.js';
import { err, type Pop3Response } from './response.js';

export { SASL_MAX_LINE, loginFailed, loginSucceeded } from '../sasl/conversation.js';

/** The same for an unknown user, a wrong password and a locked account: no account enumeration. */
export const AUTH_FAILED = err('Authentication failed', 'AUTH');
const NOT_BASE64 = err('Cannot decode the response as base64');

/** The POP3 responses of an exchange that ended without a login. */
const ENDINGS: Record<ConversationEnd, Pop3Response> = {
  failed: AUTH_FAILED,
  cancelled: err('Authentication cancelled'),
  malformed: err('Malformed authentication response'),
  'not-base64': NOT_BASE64,
  'line-too-long': err('Authentication response line is too long'),
};

export type AuthOpening =
  | { readonly kind: 'refused'; readonly response: Pop3Response }
  | { readonly kind: 'open'; readonly mechanism: SaslMechanism; readonly initialResponse: Buffer | undefined };

/** Finds the mechanism among those offered now and decodes the initial response, if any. */
export function openAuth(name: string, initial: string | undefined, offered: readonly SaslMechanism[]): AuthOpening {
  const opening = openExchange(name, initial, offered);
  switch (opening.kind) {
    case 'open':
      return opening;
    case 'unknown-mechanism':
      return { kind: 'refused', response: err('Unrecognized authentication mechanism') };
    case 'not-base64':
      return { kind: 'refused', response: NOT_BASE64 };
  }
}

/** What the session does next. */
export type AuthTurn =
  | { readonly kind: 'challenge'; readonly response: Pop3Response }
  /** The mechanism accepted the credentials of `account`; the session opens the maildrop. */
  | { readonly kind: 'authenticated'; readonly account: string }
  | { readonly kind: 'ended'; readonly response: Pop3Response };

export type AuthExchangeOptions = ConversationOptions;

/** One AUTH exchange: a new instance per AUTH command. */
export class AuthExchange extends SaslConversation<AuthTurn> {
  constructor(mechanism: SaslMechanism, ctx: SaslContext, opts: AuthExchangeOptions) {
    super(mechanism, ctx, opts, pop3Turn);
  }
}

function pop3Turn(turn: ConversationTurn): AuthTurn {
  switch (turn.kind) {
    case 'challenge':
      return { kind: 'challenge', response: { kind: 'challenge', data: turn.data } };
    case 'authenticated':
      return { kind: 'authenticated', account: turn.account };
    case 'ended':
      return { kind: 'ended', response: ENDINGS[turn.why] };
  }
}
