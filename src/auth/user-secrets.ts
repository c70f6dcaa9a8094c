// Everything the store keeps for one account, computed once from the password when it is set:
// the scrypt hash (PLAIN, LOGIN), the SCRAM-SHA-1 and SCRAM-SHA-256 keys, and — only when the
// deployment opted in — the CRAM-MD5 key state. The password itself is never stored.

import { deriveCramMd5Secret, type CramMd5Secret } from './cram-md5-secret.js';
import { hashPassword } from './password.js';
import { deriveScramSecret, MIN_SCRAM_ITERATIONS, type ScramSecret } from './scram-secrets.js';

export interface UserSecrets {
  /** PHC scrypt string, for mechanisms that see the password (PLAIN, LOGIN). */
  readonly passwordHash: string;
  /** Absent for accounts whose password was set before SCRAM existed here. */
  readonly scramSha1?: ScramSecret | undefined;
  readonly scramSha256?: ScramSecret | undefined;
  /** Password-equivalent; present only if [auth] cram_md5 was on when the password was set. */
  readonly cramMd5?: CramMd5Secret | undefined;
}

export interface UserSecretOptions {
  readonly cramMd5: boolean;
  readonly scramIterations?: number;
}

/** Throws UnpreparablePasswordError for a password SCRAM cannot use (control characters). */
export async function computeUserSecrets(password: string, opts: UserSecretOptions): Promise<UserSecrets> {
  const iterations = Math.max(opts.scramIterations ?? MIN_SCRAM_ITERATIONS, MIN_SCRAM_ITERATIONS);
  // SCRAM first: it is the one that can refuse the password, before scrypt spends its time.
  const scramSha1 = deriveScramSecret(password, 'sha1', iterations);
  const scramSha256 = deriveScramSecret(password, 'sha256', iterations);
  const passwordHash = await hashPassword(password);
  return {
    passwordHash,
    scramSha1,
    scramSha256,
    ...(opts.cramMd5 ? { cramMd5: deriveCramMd5Secret(password) } : {}),
  };
}

/** The SASL mechanisms an account's stored secrets allow (for `postern user list`). */
export function usableMechanisms(secrets: UserSecrets): string[] {
  const names = ['PLAIN', 'LOGIN'];
  if (secrets.scramSha1) names.push('SCRAM-SHA-1', 'SCRAM-SHA-1-PLUS');
  if (secrets.scramSha256) names.push('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS');
  if (secrets.cramMd5) names.push('CRAM-MD5');
  return names;
}
