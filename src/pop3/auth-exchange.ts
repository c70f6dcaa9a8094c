// POP3 AUTH (RFC 5034): one SASL exchange, from the AUTH line to +OK or -ERR. The mechanisms are
// step machines in src/sasl/; this file speaks POP3 around them ("+ " challenges in base64, "*"
// to cancel, "=" for an empty initial response) and reports failures to the guard, which counts
// them and says how long to wait before answering.

import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from '../sasl/mechanism.js';
import type { LineEvent } from '../util/line-reader.js';
import type { Pop3Guard } from './pop3-host.js';
import { err, type Pop3Response } from './response.js';

/**
 * RFC 5034 4 puts no limit of 255 octets on the AUTH line with an initial response or on the
 * client's responses; bearer tokens are long, so accept what SMTP AUTH accepts (RFC 4954 4).
 */
export const SASL_MAX_LINE = 12288 + 2;

/** The same for an unknown user, a wrong password and a locked account: no account enumeration. */
export const AUTH_FAILED = err('Authentication failed', 'AUTH');
const CANCELLED = err('Authentication cancelled');
const MALFORMED = err('Malformed authentication response');
const NOT_BASE64 = err('Cannot decode the response as base64');
const LINE_TOO_LONG = err('Authentication response line is too long');

export type AuthOpening =
  | { readonly kind: 'refused'; readonly response: Pop3Response }
  | { readonly kind: 'open'; readonly mechanism: SaslMechanism; readonly initialResponse: Buffer | undefined };

/** Finds the mechanism among those offered now and decodes the initial response, if any. */
export function openAuth(name: string, initial: string | undefined, offered: readonly SaslMechanism[]): AuthOpening {
  const mechanism = offered.find((m) => m.name === name);
  if (!mechanism) return { kind: 'refused', response: err('Unrecognized authentication mechanism') };
  if (initial === undefined) return { kind: 'open', mechanism, initialResponse: undefined };
  // RFC 5034 4: "=" is an initial response of zero length.
  const initialResponse = initial === '=' ? Buffer.alloc(0) : decodeBase64(initial);
  if (!initialResponse) return { kind: 'refused', response: NOT_BASE64 };
  return { kind: 'open', mechanism, initialResponse };
}

/** What the session does next. */
export type AuthTurn =
  | { readonly kind: 'challenge'; readonly response: Pop3Response }
  /** The mechanism accepted the credentials of `account`; the session opens the maildrop. */
  | { readonly kind: 'authenticated'; readonly account: string }
  | { readonly kind: 'ended'; readonly response: Pop3Response };

export interface AuthExchangeOptions {
  readonly guard: Pop3Guard;
  readonly clientIp: string;
  readonly sleep: (ms: number) => Promise<void>;
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

  /** A line the client sent in answer to a "+ " challenge. */
  async respond(line: LineEvent): Promise<AuthTurn> {
    if (line.kind === 'bad') return ended(line.reason === 'too-long' ? LINE_TOO_LONG : MALFORMED);
    // RFC 5034 4: "*" cancels the exchange, and the server answers -ERR.
    if (line.text === '*') return ended(CANCELLED);
    const response = decodeBase64(line.text);
    if (!response) return ended(NOT_BASE64);
    if (this.pendingFailure) return this.fail(this.pendingFailure);
    return this.conclude(await this.exchange.step(response));
  }

  private async conclude(step: SaslStep): Promise<AuthTurn> {
    switch (step.kind) {
      case 'challenge':
        return { kind: 'challenge', response: { kind: 'challenge', data: step.data } };
      case 'success':
        // The right password for a locked account fails like a wrong one (no oracle for guessers).
        if (this.opts.guard.isAccountLocked(step.identity)) return this.failed(step.identity);
        this.opts.guard.success(this.opts.clientIp, step.identity);
        return { kind: 'authenticated', account: step.identity };
      case 'failure':
        if (step.challenge !== undefined) {
          this.pendingFailure = step;
          return { kind: 'challenge', response: { kind: 'challenge', data: step.challenge } };
        }
        return this.fail(step);
    }
  }

  private fail(failure: SaslFailure): Promise<AuthTurn> | AuthTurn {
    // No credentials were tested: nothing to slow down, and the client has a bug to learn of.
    if (failure.reason === 'malformed') return ended(MALFORMED);
    return this.failed(failure.account);
  }

  private async failed(account: string | undefined): Promise<AuthTurn> {
    await loginFailed(this.opts, account, this.mechanism.name);
    return ended(AUTH_FAILED);
  }
}

/** Counts a failed login and waits as long as the guard says (RFC 5034 9: slow down guessing). */
export async function loginFailed(opts: AuthExchangeOptions, account: string | undefined, mechanism: string): Promise<void> {
  const delay = opts.guard.failure(opts.clientIp, account, mechanism);
  if (delay > 0) await opts.sleep(delay);
}

type SaslFailure = Extract<SaslStep, { kind: 'failure' }>;

function ended(response: Pop3Response): AuthTurn {
  return { kind: 'ended', response };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (RFC 4648 4): Buffer.from would silently skip junk and accept a missing "=". */
export function decodeBase64(text: string): Buffer | undefined {
  return BASE64.test(text) ? Buffer.from(text, 'base64') : undefined;
}
