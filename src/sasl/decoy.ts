// Stand-ins for the secrets of accounts that do not exist. An attacker must not learn whether an
// account exists from the reply or from how long it takes (account enumeration), so an unknown
// account goes through the same steps and the same work as a wrong password, against these.

import { createHmac, randomBytes } from 'node:crypto';
import { deriveCramMd5Secret, type CramMd5Secret } from '../auth/cram-md5-secret.js';
import { hashPassword } from '../auth/password.js';
import type { ScramHash, ScramSecret } from '../auth/scram-secrets.js';
import { digestLength } from '../auth/scram-secrets.js';

/** Per process: decoy salts are stable within a run (a real account's salt never changes either). */
const PROCESS_SECRET = randomBytes(32);

let decoyHash: Promise<string> | undefined;

/** A scrypt hash with the same parameters as real ones, of a password nobody knows. */
export function decoyPasswordHash(): Promise<string> {
  decoyHash ??= hashPassword(randomBytes(24).toString('base64'));
  return decoyHash;
}

/**
 * A SCRAM secret for an unknown account. The salt is an HMAC of the name, so asking twice gives
 * the same salt, as it would for a real account; a random salt per attempt would give it away.
 */
export function decoyScramSecret(hash: ScramHash, username: string, iterations: number): ScramSecret {
  const derive = (label: string) =>
    createHmac('sha256', PROCESS_SECRET).update(`${label}\0${hash}\0${username}`).digest();
  return {
    salt: derive('salt').subarray(0, 16),
    iterations,
    storedKey: derive('stored-key').subarray(0, digestLength(hash)),
    serverKey: derive('server-key').subarray(0, digestLength(hash)),
  };
}

export const DECOY_CRAM_MD5_SECRET: CramMd5Secret = deriveCramMd5Secret(randomBytes(24).toString('base64'));
