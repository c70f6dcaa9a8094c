// One SASL exchange as a line-based protocol carries it (SMTP AUTH, RFC 4954; POP3 AUTH, RFC
// 5034): base64 responses, "*" to cancel, "=" for an empty initial response, and the brute-force
// guard told of every outcome. What the protocol sends back for each turn (334 or "+ ", 235 or
// +OK, 535 or -ERR) is the protocol's business; this is the part that is the same.

import type { LineEvent } from '../util/line-reader.js';
import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from './mechanism.js';
import { decodeBase64 } from './sasl-text.js';
import { authAttempts } from '../metrics/metrics.js';

/**
 * RFC 4954 4: a server must accept SASL response lines, and the AUTH command with its initial
 * response, of at least 12288 octets (bearer tokens are long); plus the CRLF. RFC 5034 sets no
 * lower limit for POP3.
 */
export const SASL_MAX_LINE = 12288 + 2;

/** Why an exchange ended without a login; `failed` is the one answer for every wrong credential. */
export type ConversationEnd = 'failed' | 'cancelled' | 'malformed' | 'not-base64' | 'line-too-long';

export type ConversationTurn =
  | { readonly kind: 'challenge'; readonly data: Buffer }
  /** The mechanism accepted the credentials of `account`, and the account is not locked. */
  | { readonly kind: 'authenticated'; readonly account: string }
  | { readonly kind: 'ended'; readonly why: ConversationEnd };

/** Password-guessing accounting (src/policy/auth-throttle.ts), shared by every protocol. */
export interface ConversationGuard {
  /** Counts a failed login and says how many ms to wait before answering it. */
  failure(ip: string, account: string | undefined, mechanism: string): number;
  success(ip: string, account: string): void;
  isAccountLocked(account: string): boolean;
}

export interface ConversationOptions {
  readonly guard: ConversationGuard;
  readonly clientIp: string;
  /** Waits before a failure answer; tests may replace it. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}

/**
 * One exchange: a new instance per AUTH command. `T` is the protocol's answer to a turn, made by
 * `say` (SMTP: 334 / 235 / 535 replies; POP3: "+ " / +OK / -ERR).
 */
export class SaslConversation<T> {
  private readonly exchange: SaslExchange;
  /** A failure the mechanism sent as a challenge (RFC 7628 3.2.2): it ends on the next response. */
  private pendingFailure: SaslFailure | undefined;

  constructor(
    readonly mechanism: SaslMechanism,
    ctx: SaslContext,
    private readonly opts: ConversationOptions,
    private readonly say: (turn: ConversationTurn) => T,
  ) {
    this.exchange = mechanism.begin(ctx);
  }

  async start(initialResponse: Buffer | undefined): Promise<T> {
    return this.say(await this.conclude(await this.exchange.start(initialResponse)));
  }

  /** A line the client sent in answer to a challenge. */
  async respond(line: LineEvent): Promise<T> {
    return this.say(await this.turnFor(line));
  }

  private async turnFor(line: LineEvent): Promise<ConversationTurn> {
    if (line.kind === 'bad') return ended(line.reason === 'too-long' ? 'line-too-long' : 'malformed');
    // RFC 4954 4, RFC 5034 4: "*" cancels the exchange.
    if (line.text === '*') return ended('cancelled');
    const response = decodeBase64(line.text);
    if (!response) return ended('not-base64');
    if (this.pendingFailure) return this.fail(this.pendingFailure);
    return this.conclude(await this.exchange.step(response));
  }

  private async conclude(step: SaslStep): Promise<ConversationTurn> {
    switch (step.kind) {
      case 'challenge':
        return { kind: 'challenge', data: step.data };
      case 'success':
        // The right password for a locked account fails like a wrong one (auth-throttle.ts).
        if (this.opts.guard.isAccountLocked(step.identity)) return this.failed(step.identity);
        loginSucceeded(this.opts, step.identity, this.mechanism.name);
        return { kind: 'authenticated', account: step.identity };
      case 'failure':
        if (step.challenge !== undefined) {
          this.pendingFailure = step;
          return { kind: 'challenge', data: step.challenge };
        }
        return this.fail(step);
    }
  }

  private fail(failure: SaslFailure): Promise<ConversationTurn> | ConversationTurn {
    // No credentials were tested: nothing to slow down, and the client has a bug to learn of.
    if (failure.reason === 'malformed') return ended('malformed');
    return this.failed(failure.account);
  }

  private async failed(account: string | undefined): Promise<ConversationTurn> {
    await loginFailed(this.opts, account, this.mechanism.name);
    return ended('failed');
  }
}

/** Counts a successful login: the guard forgets the client's failures. */
export function loginSucceeded(opts: ConversationOptions, account: string, mechanism: string): void {
  authAttempts.inc({ mechanism, result: 'success' });
  opts.guard.success(opts.clientIp, account);
}

/** Counts a failed login and waits as long as the guard says (RFC 4954 9, RFC 5034 9). */
export async function loginFailed(opts: ConversationOptions, account: string | undefined, mechanism: string): Promise<void> {
  authAttempts.inc({ mechanism, result: 'failure' });
  const delay = opts.guard.failure(opts.clientIp, account, mechanism);
  // The session reads nothing meanwhile; input waits.
  if (delay > 0) await (opts.sleep ?? sleep)(delay);
}

/** How an AUTH command opens: the mechanism it names, among those offered, and its initial response. */
export type Opening =
  | { readonly kind: 'open'; readonly mechanism: SaslMechanism; readonly initialResponse: Buffer | undefined }
  | { readonly kind: 'unknown-mechanism' }
  | { readonly kind: 'not-base64' };

/** `name` as the client wrote it; "=" is an initial response of zero length (RFC 4954 4, RFC 5034 4). */
export function openExchange(name: string, initial: string | undefined, offered: readonly SaslMechanism[]): Opening {
  // SASL mechanism names are upper case (RFC 4422 3.1); clients that send "plain" mean PLAIN.
  const upper = name.toUpperCase();
  const mechanism = offered.find((m) => m.name === upper);
  if (!mechanism) return { kind: 'unknown-mechanism' };
  if (initial === undefined) return { kind: 'open', mechanism, initialResponse: undefined };
  const initialResponse = initial === '=' ? Buffer.alloc(0) : decodeBase64(initial);
  if (!initialResponse) return { kind: 'not-base64' };
  return { kind: 'open', mechanism, initialResponse };
}

type SaslFailure = Extract<SaslStep, { kind: 'failure' }>;

function ended(why: ConversationEnd): ConversationTurn {
  return { kind: 'ended', why };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
