// A SCRAM client (RFC 5802, RFC 7677, RFC 9266 tls-exporter binding): `postern probe` logs in
// with it, and the tests use it against our server-side mechanism, SCRAM-*[-PLUS].
// It is a step machine like the server: feed it the server's challenges, send what it returns.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { digest, hmac, saltedPassword, scramMechanismName, xor, type ScramHash } from '../auth/scram-secrets.js';
import { CHANNEL_BINDING_TYPE, encodeSaslname, parseServerFirst } from './scram-messages.js';

export interface ScramClientOptions {
  readonly hash: ScramHash;
  readonly username: string;
  readonly password: string;
  readonly authzid?: string;
  /** tls-exporter data of the connection (RFC 9266): binds the exchange and selects -PLUS. */
  readonly channelBinding?: Buffer;
  /**
   * Without channelBinding: whether to say "y" (we could bind, but the server offered no -PLUS)
   * instead of "n". A server that did offer -PLUS must then fail us (downgrade protection).
   */
  readonly claimBindingSupport?: boolean;
  /** Minimum iteration count to accept from the server (RFC 7677 section 4: 4096). */
  readonly minIterations?: number;
  /** For tests: the client nonce. */
  readonly nonce?: string;
}

/** Thrown when the server's messages are malformed or its signature is wrong (an impostor). */
export class ScramClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramClientError';
  }
}

type ClientState =
  | { readonly kind: 'initial' }
  | { readonly kind: 'sent-first'; readonly bare: string; readonly gs2Header: string }
  | { readonly kind: 'sent-final'; readonly serverSignature: Buffer }
  | { readonly kind: 'done' };

export class ScramClient {
  /** The mechanism to ask for in AUTH. */
  readonly mechanism: string;
  private state: ClientState = { kind: 'initial' };
  private readonly nonce: string;

  constructor(private readonly options: ScramClientOptions) {
    this.mechanism = scramMechanismName(options.hash) + (options.channelBinding ? '-PLUS' : '');
    this.nonce = options.nonce ?? randomBytes(18).toString('base64');
  }

  /** The client-first-message (the AUTH initial response). */
  clientFirst(): string {
    const { channelBinding, claimBindingSupport } = this.options;
    const flag = channelBinding ? `p=${CHANNEL_BINDING_TYPE}` : claimBindingSupport ? 'y' : 'n';
    const authzid = this.options.authzid === undefined ? '' : `a=${encodeSaslname(this.options.authzid)}`;
    const gs2Header = `${flag},${authzid},`;
    const bare = `n=${encodeSaslname(this.options.username)},r=${this.nonce}`;
    this.state = { kind: 'sent-first', bare, gs2Header };
    return gs2Header + bare;
  }

  /** The client-final-message answering the server-first-message. */
  clientFinal(serverFirst: string): string {
    const state = this.state;
    if (state.kind !== 'sent-first') throw new ScramClientError('clientFirst() must come first');
    const first = parseServerFirst(serverFirst);
    if (typeof first === 'string') throw new ScramClientError(first);
    if (!first.nonce.startsWith(this.nonce) || first.nonce.length === this.nonce.length) {
      throw new ScramClientError('the server nonce does not extend ours');
    }
    if (first.iterations < (this.options.minIterations ?? 4096)) {
      throw new ScramClientError(`iteration count ${first.iterations} is too low`);
    }
    const hash = this.options.hash;
    const cbind = Buffer.concat([Buffer.from(state.gs2Header), this.options.channelBinding ?? Buffer.alloc(0)]);
    const withoutProof = `c=${cbind.toString('base64')},r=${first.nonce}`;
    const authMessage = `${state.bare},${serverFirst},${withoutProof}`;
    const salted = saltedPassword(this.options.password, hash, first.salt, first.iterations);
    const clientKey = hmac(hash, salted, 'Client Key');
    const proof = xor(clientKey, hmac(hash, digest(hash, clientKey), authMessage));
    const serverSignature = hmac(hash, hmac(hash, salted, 'Server Key'), authMessage);
    this.state = { kind: 'sent-final', serverSignature };
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks the server-final-message; throws unless the server proved it holds our keys. */
  verifyServerFinal(serverFinal: string): void {
    const state = this.state;
    if (state.kind !== 'sent-final') throw new ScramClientError('clientFinal() must come first');
    this.state = { kind: 'done' };
    if (serverFinal.startsWith('e=')) throw new ScramClientError(`server error: ${serverFinal.slice(2)}`);
    const m = /^v=([A-Za-z0-9+/=]+)(?:,.*)?$/s.exec(serverFinal);
    const signature = m ? Buffer.from(m[1] as string, 'base64') : Buffer.alloc(0);
    if (signature.length !== state.serverSignature.length || !timingSafeEqual(signature, state.serverSignature)) {
      throw new ScramClientError('the server signature is wrong: not the server that holds our keys');
    }
  }
}
