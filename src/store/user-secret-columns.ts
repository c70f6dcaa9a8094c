// How an account's secrets map to the users table's columns (migration 3). A column that does not
// parse is read as absent, so one damaged value disables one mechanism, not the account.

import { isCramMd5Secret } from '../auth/cram-md5-secret.js';
import { formatScramSecret, parseScramSecret } from '../auth/scram-secrets.js';
import type { UserSecrets } from '../auth/user-secrets.js';

export interface UserSecretColumns {
  password_hash: string;
  scram_sha1: string | null;
  scram_sha256: string | null;
  cram_md5: string | null;
}

export function toSecretColumns(secrets: UserSecrets): UserSecretColumns {
  return {
    password_hash: secrets.passwordHash,
    scram_sha1: secrets.scramSha1 ? formatScramSecret('sha1', secrets.scramSha1) : null,
    scram_sha256: secrets.scramSha256 ? formatScramSecret('sha256', secrets.scramSha256) : null,
    cram_md5: secrets.cramMd5 ? secrets.cramMd5.toString('hex') : null,
  };
}

export function fromSecretColumns(row: UserSecretColumns): UserSecrets {
  const cramMd5 = row.cram_md5 === null ? undefined : Buffer.from(row.cram_md5, 'hex');
  return {
    passwordHash: row.password_hash,
    scramSha1: row.scram_sha1 === null ? undefined : parseScramSecret('sha1', row.scram_sha1),
    scramSha256: row.scram_sha256 === null ? undefined : parseScramSecret('sha256', row.scram_sha256),
    cramMd5: cramMd5 && isCramMd5Secret(cramMd5) ? cramMd5 : undefined,
  };
}
