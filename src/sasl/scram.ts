// SCRAM (RFC 5802; SHA-256 in RFC 7677) and its channel-bound -PLUS variants with the RFC 9266
// tls-exporter binding. The client proves it knows the password without sending it, the server
// proves it holds the keys (v=), and with -PLUS both prove they see the same TLS connection, so
// a man in the middle with a certificate the client trusts cannot relay the exchange.
// SMTP has no room for data in 235, so the server-final "v=" goes out as a last 334 challenge
// and the exchange succeeds on the client's empty answer (RFC 4954 section 4).

import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  digest,
  digestLength,
  hmac,
  MIN_SCRAM_ITERATIONS,
  scramMechanismName,
  xor,
  type ScramHash,
  type ScramSecret,
} from '../auth/scram-secrets.js';
import type { CredentialSource } from './credentials.js';
import { decoyScramSecret } from './decoy.js';
import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from './mechanism.js';
import { decodeUtf8, sameAccountName } from './sasl-text.js';
import {
  CHANNEL_BINDING_TYPE,
  formatServerFirst,
  parseClientFinal,
  parseClientFirst,
  type ClientFirst,
} from './scram-messages.js';

export interface ScramOptions {
  readonly hash: ScramHash;
  /** The -PLUS variant: channel binding required. */
  readonly plus: boolean;
  /** Iterations announced for unknown accounts; should match what `postern user add` uses. */
  readonly iterations?: number;
  /**
   * Whether a -PLUS mechanism is offered on this connection. A client that sends "y" ("I can bind
   * but you cannot") is then being lied to by someone in the middle (RFC 5802 section 6).
   */
  readonly bindingOffered?: (ctx: SaslContext) => boolean;
  /** For tests (the RFC vectors): the server's part of the nonce. */
  readonly serverNonce?: () => string;
}

export class ScramMechanism implements SaslMechanism {
  readonly name: string;

  constructor(
    private readonly credentials: CredentialSource,
    private readonly options: ScramOptions,
  ) {
    this.name = scramMechanismName(options.hash) + (options.plus ? '-PLUS' : '');
  }

  available(ctx: SaslContext): boolean {
    return !this.options.plus || ctx.channelBinding !== undefined;
  }

  begin(ctx: SaslContext): SaslExchange {
    return new ScramExchange(this.credentials, this.options, ctx);
  }
}

type ScramState =
  | { readonly kind: 'awaiting-client-first' }
  | {
      readonly kind: 'awaiting-client-final';
      readonly first: ClientFirst;
      readonly serverFirst: string;
      readonly nonce: string;
      readonly secret: ScramSecret;
      /** Undefined for an unknown account (or one without this SCRAM secret): the proof will fail. */
      readonly account: string | undefined;
    }
  | { readonly kind: 'awaiting-acknowledgement'; readonly account: string }
  | { readonly kind: 'done' };

class ScramExchange implements SaslExchange {
  private state: ScramState = { kind: 'awaiting-client-first' };

  constructor(
    private readonly credentials: CredentialSource,
    private readonly options: ScramOptions,
    private readonly ctx: SaslContext,
  ) {}

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    // SCRAM is client-first: without an initial response, ask for it with an empty challenge.
    if (initialResponse === undefined) return { kind: 'challenge', data: Buffer.alloc(0) };
    return this.step(initialResponse);
  }

  async step(response: Buffer): Promise<SaslStep> {
    const state = this.state;
    this.state = { kind: 'done' };
    switch (state.kind) {
      case 'awaiting-client-first':
        return this.onClientFirst(response);
      case 'awaiting-client-final':
        return this.onClientFinal(state, response);
      case 'awaiting-acknowledgement':
        if (response.length !== 0) return malformed('expected an empty answer to the server signature', state.account);
        return { kind: 'success', identity: state.account };
      case 'done':
        return malformed('response after the exchange ended');
    }
  }

  private async onClientFirst(response: Buffer): Promise<SaslStep> {
    const text = decodeUtf8(response);
    if (text === undefined) return malformed('not UTF-8');
    const first = parseClientFirst(text);
    if (typeof first === 'string') return malformed(first);
    const bindingProblem = this.checkBindingFlag(first);
    if (bindingProblem) return bindingProblem;
    if (first.authzid !== undefined && !sameAccountName(first.authzid, first.username)) {
      const detail = `may not act as ${first.authzid}`;
      return { kind: 'failure', reason: 'bad-credentials', account: first.username, detail };
    }

    const stored = await this.credentials.lookup(first.username);
    const storedSecret = this.options.hash === 'sha1' ? stored?.scramSha1 : stored?.scramSha256;
    // Unknown account: carry on with a decoy, so the reply to this message looks the same.
    const iterations = this.options.iterations ?? MIN_SCRAM_ITERATIONS;
    const secret = storedSecret ?? decoyScramSecret(this.options.hash, first.username, iterations);
    const nonce = first.nonce + (this.options.serverNonce ?? newServerNonce)();
    const serverFirst = formatServerFirst({ nonce, salt: secret.salt, iterations: secret.iterations });
    this.state = {
      kind: 'awaiting-client-final',
      first,
      serverFirst,
      nonce,
      secret,
      account: storedSecret ? stored?.account : undefined,
    };
    return { kind: 'challenge', data: Buffer.from(serverFirst) };
  }

  /** RFC 5802 section 6 and 7: the flag must fit the mechanism chosen and what we offered. */
  private checkBindingFlag(first: ClientFirst): SaslStep | undefined {
    const flag = first.flag;
    if (this.options.plus) {
      if (flag.kind !== 'bound') return malformed('a -PLUS mechanism without channel binding', first.username);
      if (flag.type !== CHANNEL_BINDING_TYPE) {
        const detail = `channel binding type ${flag.type}`;
        return { kind: 'failure', reason: 'unsupported', account: first.username, detail };
      }
      return undefined;
    }
    if (flag.kind === 'bound') return malformed('channel binding requested with a non-PLUS mechanism', first.username);
    if (flag.kind === 'supported-not-used' && (this.options.bindingOffered?.(this.ctx) ?? false)) {
      return {
        kind: 'failure',
        reason: 'bad-credentials',
        account: first.username,
        detail: 'client can bind to the channel but did not see our -PLUS offer: possible downgrade attack',
      };
    }
    return undefined;
  }

  private onClientFinal(state: Extract<ScramState, { kind: 'awaiting-client-final' }>, response: Buffer): SaslStep {
    const username = state.first.username;
    const text = decodeUtf8(response);
    if (text === undefined) return malformed('not UTF-8', username);
    const final = parseClientFinal(text);
    if (typeof final === 'string') return malformed(final, username);
    if (final.nonce !== state.nonce) return malformed('nonce mismatch', username);

    // c= is the gs2 header again, plus the binding data for -PLUS: a relay on another TLS
    // connection has other tls-exporter data and fails here (RFC 5802 section 6).
    const expectedBinding = Buffer.concat([
      Buffer.from(state.first.gs2Header),
      state.first.flag.kind === 'bound' ? (this.ctx.channelBinding ?? Buffer.alloc(0)) : Buffer.alloc(0),
    ]);
    if (!final.channelBinding.equals(expectedBinding)) {
      return { kind: 'failure', reason: 'bad-credentials', account: username, detail: 'channel binding mismatch' };
    }

    const hash = this.options.hash;
    const authMessage = `${state.first.bare},${state.serverFirst},${final.withoutProof}`;
    const clientSignature = hmac(hash, state.secret.storedKey, authMessage);
    const proofFits = final.proof.length === digestLength(hash);
    const clientKey = xor(proofFits ? final.proof : Buffer.alloc(digestLength(hash)), clientSignature);
    const matches = timingSafeEqual(digest(hash, clientKey), state.secret.storedKey);
    if (!proofFits || !matches || state.account === undefined) {
      const detail = state.account === undefined ? 'unknown account or no SCRAM secret' : 'wrong password';
      return { kind: 'failure', reason: 'bad-credentials', account: username, detail };
    }
    const serverSignature = hmac(hash, state.secret.serverKey, authMessage);
    this.state = { kind: 'awaiting-acknowledgement', account: state.account };
    return { kind: 'challenge', data: Buffer.from(`v=${serverSignature.toString('base64')}`) };
  }
}

/** 18 random bytes: 144 bits, base64 (printable, no commas). */
function newServerNonce(): string {
  return randomBytes(18).toString('base64');
}

function malformed(detail: string, account?: string): SaslStep {
  return { kind: 'failure', reason: 'malformed', account, detail };
}
