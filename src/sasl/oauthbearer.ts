// OAUTHBEARER (RFC 7628) and Google's older XOAUTH2: the client presents a bearer token from the
// identity provider instead of a password. Tokens here are JWTs checked locally (src/auth/jwt.ts)
// against the provider's keys; the token's identity claim must name an existing account, the
// same one the client names.
// On failure RFC 7628 section 3.2.2 has the server send a JSON error as a challenge and the client
// answer with a dummy response before the final failure. We do it as an ordinary challenge step,
// so the session needs no special case: it sends 334 <json>, and the next response fails.

import { JwksError, JwksFile } from '../auth/jwks.js';
import { verifyJwt } from '../auth/jwt.js';
import { normalizeAddress } from '../mail/address.js';
import type { CredentialSource } from './credentials.js';
import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from './mechanism.js';
import { decodeUtf8 } from './sasl-text.js';
import { decodeSaslname } from './scram-messages.js';

export interface OAuthConfig {
  readonly jwksFile: string;
  readonly issuer: string;
  readonly audience: string;
  /** The claim naming the account, e.g. "email". */
  readonly identityClaim: string;
  /** Clock skew tolerated for exp/nbf; 60 s by default. */
  readonly leewaySeconds?: number;
  /** For tests: the current time in seconds since the epoch. */
  readonly now?: () => number;
}

/** RFC 7628 section 3.1: key/value pairs are separated by ^A. */
const KVSEP = '\x01';
const MAX_MESSAGE_OCTETS = 16 * 1024;

type BearerCheck = { readonly ok: true; readonly account: string } | { readonly ok: false; readonly detail: string };

/** Validates a bearer token for the account the client names (undefined: whoever the token names). */
export class BearerTokenValidator {
  private readonly jwks: JwksFile;

  constructor(
    private readonly config: OAuthConfig,
    private readonly credentials: CredentialSource,
  ) {
    this.jwks = new JwksFile(config.jwksFile);
  }

  async check(token: string, claimedUser: string | undefined): Promise<BearerCheck> {
    let keys;
    try {
      keys = this.jwks.keys();
    } catch (err) {
      if (err instanceof JwksError) return { ok: false, detail: err.message };
      throw err;
    }
    const now = this.config.now?.() ?? Math.floor(Date.now() / 1000);
    const result = verifyJwt(token, keys, {
      issuer: this.config.issuer,
      audience: this.config.audience,
      now,
      leewaySeconds: this.config.leewaySeconds ?? 60,
    });
    if (!result.ok) return { ok: false, detail: `token rejected: ${result.reason}` };
    const claim = result.claims[this.config.identityClaim];
    const identity = typeof claim === 'string' ? normalizeAddress(claim) : undefined;
    if (identity === undefined) return { ok: false, detail: `token has no usable ${this.config.identityClaim} claim` };
    // A valid token for bob must not log in as alice: the named user and the token agree.
    if (claimedUser !== undefined && normalizeAddress(claimedUser) !== identity) {
      return { ok: false, detail: `token is for ${identity}, not ${claimedUser}` };
    }
    const stored = await this.credentials.lookup(identity);
    if (!stored) return { ok: false, detail: `no account ${identity}` };
    return { ok: true, account: stored.account };
  }
}

interface BearerRequest {
  readonly user: string | undefined;
  readonly token: string;
}

type BearerState =
  | { readonly kind: 'awaiting-message' }
  | { readonly kind: 'error-sent'; readonly account: string | undefined; readonly detail: string }
  | { readonly kind: 'done' };

/** The exchange both mechanisms share; they differ in message syntax and error JSON. */
class BearerExchange implements SaslExchange {
  private state: BearerState = { kind: 'awaiting-message' };

  constructor(
    private readonly validator: BearerTokenValidator,
    private readonly parse: (message: string) => BearerRequest | string,
    private readonly errorChallenge: Buffer,
  ) {}

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    if (initialResponse === undefined) return { kind: 'challenge', data: Buffer.alloc(0) };
    return this.step(initialResponse);
  }

  async step(response: Buffer): Promise<SaslStep> {
    const state = this.state;
    this.state = { kind: 'done' };
    switch (state.kind) {
      case 'awaiting-message':
        return this.onMessage(response);
      case 'error-sent':
        // RFC 7628 3.2.3: whatever the client answers (normally ^A), the exchange has failed.
        return { kind: 'failure', reason: 'bad-credentials', account: state.account, detail: state.detail };
      case 'done':
        return { kind: 'failure', reason: 'malformed', detail: 'response after the exchange ended' };
    }
  }

  private async onMessage(response: Buffer): Promise<SaslStep> {
    const text = response.length <= MAX_MESSAGE_OCTETS ? decodeUtf8(response) : undefined;
    const request = text === undefined ? 'not UTF-8 or too long' : this.parse(text);
    if (typeof request === 'string') return { kind: 'failure', reason: 'malformed', detail: request };
    const result = await this.validator.check(request.token, request.user);
    if (result.ok) return { kind: 'success', identity: result.account };
    this.state = { kind: 'error-sent', account: request.user, detail: result.detail };
    return { kind: 'challenge', data: this.errorChallenge };
  }
}

/** The two mechanisms differ only in name, message syntax and error JSON. */
abstract class BearerMechanism implements SaslMechanism {
  abstract readonly name: string;
  private readonly validator: BearerTokenValidator;

  constructor(
    config: OAuthConfig,
    credentials: CredentialSource,
    private readonly parse: (message: string) => BearerRequest | string,
    private readonly errorChallenge: Buffer,
  ) {
    this.validator = new BearerTokenValidator(config, credentials);
  }

  available(ctx: SaslContext): boolean {
    // A bearer token is as good as a password to whoever sees it (RFC 7628 section 5).
    return ctx.secure;
  }

  begin(_ctx: SaslContext): SaslExchange {
    return new BearerExchange(this.validator, this.parse, this.errorChallenge);
  }
}

export class OAuthBearerMechanism extends BearerMechanism {
  readonly name = 'OAUTHBEARER';

  constructor(config: OAuthConfig, credentials: CredentialSource) {
    super(config, credentials, parseOAuthBearer, OAUTHBEARER_ERROR);
  }
}

export class XOAuth2Mechanism extends BearerMechanism {
  readonly name = 'XOAUTH2';

  constructor(config: OAuthConfig, credentials: CredentialSource) {
    super(config, credentials, parseXOAuth2, XOAUTH2_ERROR);
  }
}

const OAUTHBEARER_ERROR = Buffer.from(JSON.stringify({ status: 'invalid_token' }));
/** What Gmail sends; clients expect the HTTP-like status. */
const XOAUTH2_ERROR = Buffer.from(JSON.stringify({ status: '401', schemes: 'bearer' }));

/** RFC 7628 section 3.1: gs2-header ^A *(key=value ^A) ^A. */
export function parseOAuthBearer(message: string): BearerRequest | string {
  const fields = splitKvMessage(message);
  if (typeof fields === 'string') return fields;
  const [gs2Header, ...pairs] = fields;
  const m = /^([ny]),(a=[^,]*)?,$/.exec(gs2Header ?? '');
  // RFC 7628 defines no channel binding: "p=" is not allowed.
  if (!m) return 'bad gs2 header';
  let user: string | undefined;
  if (m[2] !== undefined) {
    user = decodeSaslname(m[2].slice(2));
    if (user === undefined) return 'bad authzid';
  }
  const kv = parsePairs(pairs);
  if (typeof kv === 'string') return kv;
  const token = bearerToken(kv.get('auth'));
  return token === undefined ? 'no "auth=Bearer <token>"' : { user, token };
}

/** XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A. */
export function parseXOAuth2(message: string): BearerRequest | string {
  const fields = splitKvMessage(message);
  if (typeof fields === 'string') return fields;
  const kv = parsePairs(fields);
  if (typeof kv === 'string') return kv;
  const user = kv.get('user');
  const token = bearerToken(kv.get('auth'));
  if (!user) return 'no user';
  return token === undefined ? 'no "auth=Bearer <token>"' : { user, token };
}

function splitKvMessage(message: string): string[] | string {
  if (!message.endsWith(KVSEP + KVSEP)) return 'message does not end with ^A^A';
  return message.slice(0, -2).split(KVSEP);
}

function parsePairs(pairs: readonly string[]): Map<string, string> | string {
  const kv = new Map<string, string>();
  for (const pair of pairs) {
    const m = /^([A-Za-z]+)=(.*)$/s.exec(pair);
    if (!m) return 'bad key=value pair';
    const [, key = '', value = ''] = m;
    kv.set(key.toLowerCase(), value);
  }
  return kv;
}

/** RFC 6750 section 2.1: "Bearer" (case-insensitive) then the token. */
function bearerToken(auth: string | undefined): string | undefined {
  const m = auth === undefined ? null : /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(auth);
  return m?.[1];
}
