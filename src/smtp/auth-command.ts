// SMTP AUTH (RFC 4954): when the command may be used, and one SASL exchange from the AUTH line to
// 235 or 535. The mechanisms themselves are step machines in src/sasl/; this file speaks SMTP
// around them (base64, "334", "*", reply codes) and asks the AuthGuard about password guessing.
// The session (session.ts) owns the input mode; it hands each response line to AuthExchange.

import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from '../sasl/mechanism.js';
import type { LineEvent } from '../util/line-reader.js';
import { reply, type Reply } from '../mail/reply.js';
import type { AuthGuard } from './session-host.js';

/**
 * RFC 4954 4: a server must accept SASL response lines, and the AUTH command with its initial
 * response, of at least 12288 octets (bearer tokens are long); plus the CRLF.
 */
export const SASL_MAX_LINE = 12288 + 2;

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
  // SASL mechanism names are upper case (RFC 4422 3.1); clients that send "plain" mean PLAIN.
  const name = (words[0] ?? '').toUpperCase();
  const mechanism = offered.find((m) => m.name === name);
  if (!mechanism) return { kind: 'refused', reply: reply(504, '5.5.4', 'Unrecognized authentication type') };
  const initial = words[1];
  if (initial === undefined) return { kind: 'open', mechanism, initialResponse: undefined };
  // RFC 4954 4: "=" is an initial response of zero length.
  const initialResponse = initial === '=' ? Buffer.alloc(0) : decodeBase64(initial);
  if (!initialResponse) return { kind: 'refused', reply: NOT_BASE64 };
  return { kind: 'open', mechanism, initialResponse };
}

/** What the session does next: send a challenge and wait, or send the final reply. */
export type AuthTurn =
  | { readonly kind: 'challenge'; readonly reply: Reply }
  | { readonly kind: 'authenticated'; readonly account: string; readonly reply: Reply }
  | { readonly kind: 'ended'; readonly reply: Reply };

export interface AuthExchangeOptions {
  readonly guard: AuthGuard;
  readonly clientIp: string;
  /** Waits before a failure reply; tests may replace it. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** One AUTH exchange: a new instance per AUTH command. */
export class AuthExchange {
  private readonly exchange: SaslExchange;
  /** A failure the mechanism sent as a challenge (RFC 7628 3.2.2): it ends on the next response. */
  private pendingFailure: SaslFailure | undefined;

  constructor(
    readonly mechanism: SaslMechanism,
    ctx: SaslContext,
    private readonly opts: AuthExchangeOptions,
  ) {
    this.exchange = mechanism.begin(ctx);
  }

  async start(initialResponse: Buffer | undefined): Promise<AuthTurn> {
    return this.conclude(await this.exchange.start(initialResponse));
  }

  /** A line the client sent in answer to a 334 challenge. */
  async respond(line: LineEvent): Promise<AuthTurn> {
    if (line.kind === 'bad') return ended(line.reason === 'too-long' ? LINE_TOO_LONG : AUTH_MALFORMED);
    // RFC 4954 4: "*" cancels the exchange.
    if (line.text === '*') return ended(AUTH_CANCELLED);
    const response = decodeBase64(line.text);
    if (!response) return ended(NOT_BASE64);
    if (this.pendingFailure) return this.fail(this.pendingFailure);
    return this.conclude(await this.exchange.step(response));
  }

  private async conclude(step: SaslStep): Promise<AuthTurn> {
    switch (step.kind) {
      case 'challenge':
        return { kind: 'challenge', reply: challenge(step.data) };
      case 'success':
        // The right password for a locked account fails like a wrong one (auth-throttle.ts).
        if (this.opts.guard.isAccountLocked(step.identity)) return this.failed(step.identity);
        this.opts.guard.success(this.opts.clientIp, step.identity);
        return { kind: 'authenticated', account: step.identity, reply: AUTH_SUCCESSFUL };
      case 'failure':
        if (step.challenge !== undefined) {
          this.pendingFailure = step;
          return { kind: 'challenge', reply: challenge(step.challenge) };
        }
        return this.fail(step);
    }
  }

  private fail(failure: SaslFailure): Promise<AuthTurn> | AuthTurn {
    // No credentials were tested: nothing to slow down, and the client has a bug to learn of.
    if (failure.reason === 'malformed') return ended(AUTH_MALFORMED);
    return this.failed(failure.account);
  }

  private async failed(account: string | undefined): Promise<AuthTurn> {
    const delay = this.opts.guard.failure(this.opts.clientIp, account, this.mechanism.name);
    // RFC 4954 9: slow down guessing. The session reads nothing meanwhile; input waits.
    if (delay > 0) await (this.opts.sleep ?? sleep)(delay);
    return ended(AUTH_FAILED);
  }
}

type SaslFailure = Extract<SaslStep, { kind: 'failure' }>;

function ended(r: Reply): AuthTurn {
  return { kind: 'ended', reply: r };
}

/** "334 <base64>"; an empty challenge is "334 " (RFC 4954 4). No enhanced code on 334. */
function challenge(data: Buffer): Reply {
  return reply(334, undefined, data.toString('base64'));
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (RFC 4648 4): Buffer.from would silently skip junk and accept a missing "=". */
export function decodeBase64(text: string): Buffer | undefined {
  return BASE64.test(text) ? Buffer.from(text, 'base64') : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
