// What the server keeps for SCRAM (RFC 5802 section 3): the salt, the iteration count, StoredKey
// and ServerKey — never the password. StoredKey only lets the server check a proof; a thief must
// still brute-force PBKDF2 to log in (or to learn the password). Stored in the RFC 5803 text form,
// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", so the column reads like an
// LDAP authPassword value and keeps its own parameters.

import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { saslprep } from './saslprep.js';

export type ScramHash = 'sha1' | 'sha256';

export interface ScramSecret {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

/** RFC 7677 section 4: at least 4096 iterations. */
export const MIN_SCRAM_ITERATIONS = 4096;
const SALT_BYTES = 16;

/** Thrown for a password that SASLprep refuses (control characters); SCRAM cannot use it. */
export class UnpreparablePasswordError extends Error {
  constructor() {
    super('the password contains control or private-use characters, which SCRAM (SASLprep, RFC 4013) refuses');
    this.name = 'UnpreparablePasswordError';
  }
}

export function deriveScramSecret(
  password: string,
  hash: ScramHash,
  iterations: number = MIN_SCRAM_ITERATIONS,
  salt: Buffer = randomBytes(SALT_BYTES),
): ScramSecret {
  const salted = saltedPassword(password, hash, salt, iterations);
  const clientKey = hmac(hash, salted, 'Client Key');
  return { salt, iterations, storedKey: digest(hash, clientKey), serverKey: hmac(hash, salted, 'Server Key') };
}

/** SaltedPassword := Hi(Normalize(password), salt, i), where Hi is PBKDF2 with HMAC (RFC 5802 2.2). */
export function saltedPassword(password: string, hash: ScramHash, salt: Buffer, iterations: number): Buffer {
  const prepared = saslprep(password);
  if (prepared === undefined) throw new UnpreparablePasswordError();
  return pbkdf2Sync(prepared, salt, iterations, digestLength(hash), hash);
}

export function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(hash, key).update(data).digest();
}

export function digest(hash: ScramHash, data: Buffer): Buffer {
  return createHash(hash).update(data).digest();
}

export function digestLength(hash: ScramHash): number {
  return hash === 'sha1' ? 20 : 32;
}

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out.writeUInt8(a.readUInt8(i) ^ b.readUInt8(i), i);
  return out;
}

export function scramMechanismName(hash: ScramHash): string {
  return hash === 'sha1' ? 'SCRAM-SHA-1' : 'SCRAM-SHA-256';
}

export function formatScramSecret(hash: ScramHash, secret: ScramSecret): string {
  return (
    `${scramMechanismName(hash)}$${secret.iterations}:${secret.salt.toString('base64')}` +
    `$${secret.storedKey.toString('base64')}:${secret.serverKey.toString('base64')}`
  );
}

/** Undefined for text that is not a well-formed secret of this hash (never throws). */
export function parseScramSecret(hash: ScramHash, text: string): ScramSecret | undefined {
  const m = /^([A-Z0-9-]+)\$(\d{1,9}):([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*):([A-Za-z0-9+/]+=*)$/.exec(text);
  if (!m || m[1] !== scramMechanismName(hash)) return undefined;
  const [, , iterationsText, saltText = '', storedKeyText = '', serverKeyText = ''] = m;
  const iterations = Number(iterationsText);
  const salt = Buffer.from(saltText, 'base64');
  const storedKey = Buffer.from(storedKeyText, 'base64');
  const serverKey = Buffer.from(serverKeyText, 'base64');
  if (iterations < 1 || salt.length === 0) return undefined;
  if (storedKey.length !== digestLength(hash) || serverKey.length !== digestLength(hash)) return undefined;
  return { salt, iterations, storedKey, serverKey };
}
