// Validating the bearer tokens of OAUTHBEARER/XOAUTH2 as JWTs (RFC 7519) signed with RS256 or
// ES256 (RFC 7515, RFC 7518). Only those two algorithms: "none" would accept any token, and HS256
// with a public key as the HMAC secret is the classic key-confusion forgery.

import { verify } from 'node:crypto';
import type { JwtAlgorithm, SigningKey } from './jwks.js';

export interface JwtExpectations {
  readonly issuer: string;
  readonly audience: string;
  /** Seconds since the epoch. */
  readonly now: number;
  /** Tolerated clock skew in seconds for exp and nbf. */
  readonly leewaySeconds: number;
}

export type JwtResult =
  | { readonly ok: true; readonly claims: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: string };

const ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'ES256'];

export function verifyJwt(token: string, keys: readonly SigningKey[], expect: JwtExpectations): JwtResult {
  const parts = token.split('.');
  if (parts.length !== 3) return fail('not a JWS compact serialization');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeJson(headerPart);
  const claims = decodeJson(payloadPart);
  if (!header || !claims) return fail('header or payload is not base64url JSON');

  const alg = header['alg'];
  if (!ALGORITHMS.includes(alg as JwtAlgorithm)) return fail(`algorithm ${JSON.stringify(alg)} is not accepted`);
  // RFC 7515 4.1.11: a token that needs extensions we do not implement must be rejected.
  if (header['crit'] !== undefined) return fail('critical header extensions are not supported');
  const key = selectKey(keys, alg as JwtAlgorithm, header['kid']);
  if (!key) return fail(`no key for kid ${JSON.stringify(header['kid'])} and ${String(alg)}`);

  const signature = decodeBase64Url(signaturePart);
  // ES256 signatures are the raw r||s pair (RFC 7518 3.4), not DER.
  if (signature === undefined || (alg === 'ES256' && signature.length !== 64)) return fail('malformed signature');
  const signed = Buffer.from(`${headerPart}.${payloadPart}`, 'ascii');
  if (!signatureValid(alg as JwtAlgorithm, signed, key, signature)) return fail('bad signature');

  return checkClaims(claims, expect);
}

function checkClaims(claims: Record<string, unknown>, expect: JwtExpectations): JwtResult {
  if (claims['iss'] !== expect.issuer) return fail(`issuer ${JSON.stringify(claims['iss'])} is not ${expect.issuer}`);
  const aud = claims['aud'];
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (!audiences.includes(expect.audience)) return fail(`audience ${JSON.stringify(aud)} is not ${expect.audience}`);
  // A token without an expiry would be valid forever if stolen: require exp.
  const exp = claims['exp'];
  if (typeof exp !== 'number') return fail('no expiry (exp)');
  if (expect.now >= exp + expect.leewaySeconds) return fail('expired');
  const nbf = claims['nbf'];
  if (nbf !== undefined && (typeof nbf !== 'number' || expect.now < nbf - expect.leewaySeconds)) {
    return fail('not yet valid (nbf)');
  }
  return { ok: true, claims };
}

function signatureValid(alg: JwtAlgorithm, signed: Buffer, key: SigningKey, signature: Buffer): boolean {
  try {
    return alg === 'ES256'
      ? verify('sha256', signed, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature)
      : verify('sha256', signed, key.key, signature);
  } catch {
    // OpenSSL throws for some malformed signatures instead of returning false.
    return false;
  }
}

/** By kid when the token names one; otherwise only if exactly one key fits the algorithm. */
function selectKey(keys: readonly SigningKey[], alg: JwtAlgorithm, kid: unknown): SigningKey | undefined {
  const fitting = keys.filter((k) => k.alg === alg);
  if (kid === undefined) return fitting.length === 1 ? fitting[0] : undefined;
  return fitting.find((k) => k.kid === kid);
}

function decodeJson(part: string): Record<string, unknown> | undefined {
  const bytes = decodeBase64Url(part);
  if (!bytes) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function decodeBase64Url(part: string): Buffer | undefined {
  return /^[A-Za-z0-9_-]*$/.test(part) ? Buffer.from(part, 'base64url') : undefined;
}

function fail(reason: string): JwtResult {
  return { ok: false, reason };
}
