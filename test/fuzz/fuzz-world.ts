// The accounts, keys and SASL mechanisms the fuzz targets log in against. Everything a fuzzed input
// may depend on is fixed here (server nonce, CRAM-MD5 challenge, channel binding data, the OAuth
// clock), so that an input replays the same way, and a generator can build messages that are valid
// (a correct SCRAM proof, a signed token) and then mutate them: most of the machine lies behind a
// correct first step.
//
// Secrets are real but cheap (scrypt with N=2, SCRAM with 2 iterations): the mechanisms compute
// the same things as with production parameters, only a million inputs finish in minutes.

import { randomBytes, scryptSync } from 'node:crypto';
import { deriveCramMd5Secret } from '../../src/auth/cram-md5-secret.js';
import { deriveScramSecret, type ScramHash } from '../../src/auth/scram-secrets.js';
import { SASL_MECHANISMS } from '../../src/config/schema.js';
import { normalizeAddress } from '../../src/mail/address.js';
import type { TlsInfo } from '../../src/mail/tls-info.js';
import { CramMd5Mechanism } from '../../src/sasl/cram-md5.js';
import type { CredentialSource, StoredCredentials } from '../../src/sasl/credentials.js';
import { LoginMechanism } from '../../src/sasl/login.js';
import type { SaslContext, SaslMechanism } from '../../src/sasl/mechanism.js';
import { OAuthBearerMechanism, XOAuth2Mechanism, type OAuthConfig } from '../../src/sasl/oauthbearer.js';
import { PlainMechanism } from '../../src/sasl/plain.js';
import { ScramMechanism } from '../../src/sasl/scram.js';
import { TEST_AUDIENCE, TEST_ISSUER, TestTokenIssuer } from '../support/test-token-issuer.js';

export const HOSTNAME = 'mx.example';
/** The accounts that exist, with their passwords (one needs SASLprep, NFC and saslname escapes). */
export const PASSWORDS: Readonly<Record<string, string>> = {
  'alice@example.test': 'pencil',
  'o,dd=name@example.test': 'p\u00e4ss w\u00f6rd',
};
export const ACCOUNTS = Object.keys(PASSWORDS);
/**
 * The one name that has no record at all, so PLAIN and LOGIN check it against the decoy hash (a
 * full-cost scrypt, ~0.2 s): generators name it rarely. Every other unknown name gets a record with
 * an unguessable password and no SCRAM or CRAM-MD5 secrets, so those take their decoy paths.
 */
export const GHOST = 'ghost@example.test';

export const SCRAM_ITERATIONS = 2;
export const SERVER_NONCE = 'fuzzServerNonce0123456789';
export const CRAM_CHALLENGE = `<1234567890.1700000000@${HOSTNAME}>`;
/** tls-exporter data of every fuzzed TLS connection (RFC 9266: 32 octets). */
export const CHANNEL_BINDING = Buffer.alloc(32, 0x5c);
export const TLS13: TlsInfo = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', channelBinding: CHANNEL_BINDING };
/** Seconds since the epoch, as the OAuth mechanisms see it. */
export const OAUTH_NOW = 1_700_000_000;

/** Every mechanism Postern implements, in the order it offers them. */
export const MECHANISM_NAMES = SASL_MECHANISMS;
export type MechanismName = (typeof MECHANISM_NAMES)[number];

/** scrypt at the smallest cost password.ts accepts, in its PHC form. */
function cheapHash(password: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(password.normalize('NFC'), salt, 32, { N: 2, r: 1, p: 1 });
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=1,r=1,p=1$${b64(salt)}$${b64(key)}`;
}

export class FuzzCredentials implements CredentialSource {
  private readonly known = new Map<string, StoredCredentials>();
  private readonly strangerHash = cheapHash(randomBytes(24).toString('base64'));

  constructor() {
    for (const [account, password] of Object.entries(PASSWORDS)) {
      this.known.set(account, {
        account,
        passwordHash: cheapHash(password),
        scramSha1: deriveScramSecret(password, 'sha1', SCRAM_ITERATIONS),
        scramSha256: deriveScramSecret(password, 'sha256', SCRAM_ITERATIONS),
        cramMd5: deriveCramMd5Secret(password),
      });
    }
  }

  async lookup(name: string): Promise<StoredCredentials | undefined> {
    const account = normalizeAddress(name) ?? name;
    if (account === GHOST) return undefined;
    return this.known.get(account) ?? { account, passwordHash: this.strangerHash };
  }

  /** The stored record of an account that exists (for building valid SCRAM proofs). */
  scramSecret(account: string, hash: ScramHash) {
    const stored = this.known.get(normalizeAddress(account) ?? account);
    return hash === 'sha1' ? stored?.scramSha1 : stored?.scramSha256;
  }
}

/** Tokens the OAuth generators choose from: valid ones, and each way a token can be wrong. */
export interface FuzzTokens {
  /** Valid, signed, for the account named. */
  readonly valid: ReadonlyArray<{ readonly token: string; readonly account: string }>;
  readonly invalid: readonly string[];
}

export interface FuzzWorld {
  readonly credentials: FuzzCredentials;
  /** In the order a listener offers them. */
  readonly mechanisms: readonly SaslMechanism[];
  readonly byName: ReadonlyMap<MechanismName, SaslMechanism>;
  readonly tokens: FuzzTokens;
  close(): void;
}

export function createFuzzWorld(): FuzzWorld {
  const credentials = new FuzzCredentials();
  const issuer = new TestTokenIssuer();
  const oauth: OAuthConfig = {
    jwksFile: issuer.jwksFile,
    issuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    identityClaim: 'email',
    now: () => OAUTH_NOW,
  };
  const claims = (email: string, overrides: Record<string, unknown> = {}) =>
    issuer.claimsFor(email, { iat: OAUTH_NOW - 60, exp: OAUTH_NOW + 3600, ...overrides });
  const tokens: FuzzTokens = {
    valid: [
      { token: issuer.sign(claims('alice@example.test')), account: 'alice@example.test' },
      { token: issuer.sign(claims('Alice@Example.TEST'), { alg: 'ES256' }), account: 'alice@example.test' },
      { token: issuer.sign(claims('o,dd=name@example.test')), account: 'o,dd=name@example.test' },
    ],
    invalid: [
      issuer.sign(claims('alice@example.test', { exp: OAUTH_NOW - 3600 })),
      issuer.sign(claims('alice@example.test', { aud: 'someone-else' })),
      issuer.sign(claims('alice@example.test', { iss: 'https://evil.example' })),
      issuer.sign(claims('alice@example.test'), { alg: 'none' }),
      issuer.sign(claims('alice@example.test'), { foreignKey: true }),
      issuer.sign(claims('alice@example.test'), { kid: 'no-such-key' }),
      issuer.sign(claims(GHOST)), // no such account
      issuer.sign(claims('not an address')),
      issuer.sign(claims('alice@example.test', { email: undefined })),
    ],
  };
  // As src/sasl/registry.ts builds them, with the fixed nonce and challenge above.
  const bindingOffered = (ctx: SaslContext) => ctx.channelBinding !== undefined;
  const scram = (hash: ScramHash, plus: boolean) =>
    new ScramMechanism(credentials, { hash, plus, iterations: SCRAM_ITERATIONS, bindingOffered, serverNonce: () => SERVER_NONCE });
  const mechanisms: SaslMechanism[] = [
    scram('sha256', true),
    scram('sha256', false),
    scram('sha1', true),
    scram('sha1', false),
    new PlainMechanism(credentials),
    new LoginMechanism(credentials),
    new CramMd5Mechanism(credentials, { challenge: () => CRAM_CHALLENGE }),
    new OAuthBearerMechanism(oauth, credentials),
    new XOAuth2Mechanism(oauth, credentials),
  ];
  const byName = new Map(mechanisms.map((m) => [m.name as MechanismName, m]));
  return { credentials, mechanisms, byName, tokens, close: () => issuer.close() };
}
