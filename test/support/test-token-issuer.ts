// A small OAuth authorization server for tests: RSA and EC keys made with node:crypto, a JWKS file
// in a temp directory, and JWTs signed with them (including deliberately broken ones).

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TEST_ISSUER = 'https://issuer.example.test';
export const TEST_AUDIENCE = 'postern-test';

interface IssuerKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export interface SignOptions {
  readonly alg?: 'RS256' | 'ES256' | 'none';
  /** Overrides the kid in the header (a key the JWKS does not have). */
  readonly kid?: string;
  /** Signs with a key that is not in the JWKS, under the real kid. */
  readonly foreignKey?: boolean;
}

export class TestTokenIssuer {
  readonly dir = mkdtempSync(join(tmpdir(), 'postern-jwks-'));
  readonly jwksFile = join(this.dir, 'jwks.json');
  private readonly keys: IssuerKey[] = [
    { kid: 'rsa-1', alg: 'RS256', ...generateKeyPairSync('rsa', { modulusLength: 2048 }) },
    { kid: 'ec-1', alg: 'ES256', ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
  ];
  private readonly stranger = {
    RS256: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
    ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  };

  constructor() {
    // The server reads the JWKS as "nobody" when the tests run as root (mkdtemp makes 0700).
    chmodSync(this.dir, 0o755);
    this.writeJwks();
  }

  writeJwks(keys: readonly IssuerKey[] = this.keys): void {
    const jwks = keys.map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, use: 'sig', alg: k.alg }));
    writeFileSync(this.jwksFile, JSON.stringify({ keys: jwks }));
    chmodSync(this.jwksFile, 0o644);
  }

  /** The [auth.oauth] table of a server that trusts this issuer. */
  oauthConfig(): { jwks_file: string; issuer: string; audience: string } {
    return { jwks_file: this.jwksFile, issuer: TEST_ISSUER, audience: TEST_AUDIENCE };
  }

  /** Claims valid for an hour unless overridden (undefined removes a claim). */
  claimsFor(email: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: TEST_ISSUER,
      aud: TEST_AUDIENCE,
      sub: 'subject-1',
      email,
      iat: now,
      exp: now + 3600,
      ...overrides,
    };
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    return claims;
  }

  sign(claims: Record<string, unknown>, options: SignOptions = {}): string {
    const alg = options.alg ?? 'RS256';
    const key = this.keys.find((k) => k.alg === (alg === 'none' ? 'RS256' : alg)) as IssuerKey;
    const header = { alg, typ: 'JWT', kid: options.kid ?? key.kid };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    if (alg === 'none') return `${input}.`;
    const privateKey = options.foreignKey ? this.stranger[alg] : key.privateKey;
    const signature =
      alg === 'ES256'
        ? sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : sign('sha256', Buffer.from(input), privateKey);
    return `${input}.${signature.toString('base64url')}`;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}
