// Password hashes for submission users, stored as PHC strings: "$scrypt$ln=15,r=8,p=1$<salt>$<hash>".
// scrypt (RFC 7914) is memory-hard, so a stolen store is expensive to brute-force on GPUs.
// The parameters are kept in the string, so raising them later leaves old hashes verifiable.

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const LOG_N = 15;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** Refuses hashes whose parameters would make one verification cost gigabytes (a planted DoS). */
const MAX_LOG_N = 20;

interface ScryptParams {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

export async function hashPassword(password: string): Promise<string> {
  const params: ScryptParams = { logN: LOG_N, r: BLOCK_SIZE, p: PARALLELISM };
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(password, salt, params, KEY_BYTES);
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/** False for a wrong password and for a hash this module cannot read (never throws for those). */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  // HMAC pads a key shorter than its block with zero octets (RFC 2104 2), and scrypt's PBKDF2 keys
  // HMAC with the password, so "pencil\0" derives the same key as "pencil". No stored password
  // contains NUL (SASLprep refuses control characters when one is set, RFC 4013 2.3): none matches.
  if (password.includes('\0')) return false;
  const parsed = parseScryptHash(hash);
  if (!parsed) return false;
  const key = await deriveKey(password, parsed.salt, parsed.params, parsed.key.length);
  // Constant-time: the comparison must not reveal how many leading bytes matched.
  return timingSafeEqual(key, parsed.key);
}

interface ParsedHash {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function parseScryptHash(hash: string): ParsedHash | undefined {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(hash);
  if (!m) return undefined;
  const params = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.logN < 1 || params.logN > MAX_LOG_N || params.r < 1 || params.p < 1) return undefined;
  const [, , , , saltText = '', keyText = ''] = m;
  const salt = Buffer.from(saltText, 'base64');
  const key = Buffer.from(keyText, 'base64');
  if (salt.length === 0 || key.length < 16) return undefined;
  return { params, salt, key };
}

function deriveKey(password: string, salt: Buffer, params: ScryptParams, length: number): Promise<Buffer> {
  const N = 2 ** params.logN;
  const options: ScryptOptions = {
    N,
    r: params.r,
    p: params.p,
    // scrypt needs 128 * N * r bytes; Node's default maxmem (32 MiB) is exactly that for
    // N=2^15, r=8, and the check is strict, so leave headroom.
    maxmem: 128 * N * params.r * params.p + 16 * 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    // NFC as in RFC 8265's OpaqueString profile: the same password typed on another system,
    // composed differently, must still match.
    scrypt(password.normalize('NFC'), salt, length, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** PHC strings use standard base64 without padding. */
function b64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}
