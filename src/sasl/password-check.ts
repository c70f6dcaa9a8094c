// The shared end of PLAIN and LOGIN: check a password against the account's scrypt hash, or
// against a decoy hash when there is no such account, so both cases cost one scrypt.

import { verifyPassword } from '../auth/password.js';
import type { SaslStep } from './mechanism.js';
import type { CredentialSource } from './credentials.js';
import { decoyPasswordHash } from './decoy.js';

export async function checkPassword(
  credentials: CredentialSource,
  username: string,
  password: string,
): Promise<SaslStep> {
  const stored = await credentials.lookup(username);
  const hash = stored?.passwordHash ?? (await decoyPasswordHash());
  const matches = await verifyPassword(password, hash);
  if (stored && matches) return { kind: 'success', identity: stored.account };
  return {
    kind: 'failure',
    reason: 'bad-credentials',
    account: username,
    detail: stored ? 'wrong password' : 'unknown account',
  };
}
