// The shared end of PLAIN and LOGIN: check a password against the account's scrypt hash, or
// against a decoy hash when there is no such account, so both cases cost one scrypt. A recent
// success with the same password skips the scrypt (see verified-password-cache.ts).

import { verifyPassword } from '../auth/password.js';
import type { SaslStep } from './mechanism.js';
import type { CredentialSource } from './credentials.js';
import { decoyPasswordHash } from './decoy.js';
import { VerifiedPasswordCache } from './verified-password-cache.js';

/** One per process: Dovecot's default auth_cache_ttl is an hour; a quarter of that is plenty. */
const recentlyVerified = new VerifiedPasswordCache({ ttlMs: 15 * 60_000, capacity: 10_000 });

export async function checkPassword(
  credentials: CredentialSource,
  username: string,
  password: string,
): Promise<SaslStep> {
  const stored = await credentials.lookup(username);
  if (stored && recentlyVerified.matches(stored.account, stored.passwordHash, password)) {
    return { kind: 'success', identity: stored.account };
  }
  const hash = stored?.passwordHash ?? (await decoyPasswordHash());
  const matches = await verifyPassword(password, hash);
  if (stored && matches) {
    recentlyVerified.remember(stored.account, stored.passwordHash, password);
    return { kind: 'success', identity: stored.account };
  }
  return {
    kind: 'failure',
    reason: 'bad-credentials',
    account: username,
    detail: stored ? 'wrong password' : 'unknown account',
  };
}
