// The signing keys of the OAuth authorization server, from a JWKS file (RFC 7517 section 5)
// the operator keeps current (e.g. fetched from the issuer's jwks_uri by a timer). Re-read when the
// file changes, so a key rotation needs no restart. Only keys a JWT here may use are kept:
// RSA for RS256, EC P-256 for ES256 (RFC 7518 section 3.1).

import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export type JwtAlgorithm = 'RS256' | 'ES256';

export interface SigningKey {
  readonly kid: string | undefined;
  readonly alg: JwtAlgorithm;
  readonly key: KeyObject;
}

export class JwksError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JwksError';
  }
}

/** Parses a JWKS document; keys of other types or uses are skipped, a malformed document throws. */
export function parseJwks(text: string, source: string): SigningKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new JwksError(`${source}: not JSON`);
  }
  const keys = (doc as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw new JwksError(`${source}: expected a JWKS document, {"keys": [...]}`);
  return keys.flatMap((jwk: unknown) => {
    const key = toSigningKey(jwk);
    return key ? [key] : [];
  });
}

function toSigningKey(value: unknown): SigningKey | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const jwk = value as JsonWebKey & { kid?: unknown; use?: unknown; alg?: unknown };
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  const alg: JwtAlgorithm | undefined =
    jwk.kty === 'RSA' ? 'RS256' : jwk.kty === 'EC' && jwk.crv === 'P-256' ? 'ES256' : undefined;
  if (alg === undefined || (jwk.alg !== undefined && jwk.alg !== alg)) return undefined;
  // Never a private key, even if the file holds one: we only verify.
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicPart } = jwk;
  try {
    const key = createPublicKey({ key: publicPart, format: 'jwk' });
    return { kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, alg, key };
  } catch {
    return undefined;
  }
}

/** The keys in a JWKS file, re-read when its modification time or size changes. */
export class JwksFile {
  private cached: { readonly stamp: string; readonly keys: SigningKey[] } | undefined;

  constructor(readonly path: string) {}

  /** Throws JwksError when the file cannot be read or parsed. */
  keys(): SigningKey[] {
    let stamp: string;
    try {
      const st = statSync(this.path);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch (err) {
      throw new JwksError(`cannot read the JWKS file "${this.path}": ${(err as Error).message}`);
    }
    if (this.cached?.stamp !== stamp) {
      this.cached = { stamp, keys: parseJwks(readFileSync(this.path, 'utf8'), this.path) };
    }
    return this.cached.keys;
  }
}
