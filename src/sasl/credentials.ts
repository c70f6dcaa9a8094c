// Where mechanisms find an account's stored secrets. Mechanisms get a CredentialSource rather than
// the Store so that tests can hand them the RFC example accounts (user "user", not an address).

import type { UserSecrets } from '../auth/user-secrets.js';
import type { DirectoryStore } from '../store/store.js';
import { normalizeAddress } from '../mail/address.js';

export interface StoredCredentials extends UserSecrets {
  /** The normalized account name: the identity a successful exchange reports. */
  readonly account: string;
}

export interface CredentialSource {
  /** `account` as the client typed it; undefined for unknown (or unparsable) accounts. */
  lookup(account: string): Promise<StoredCredentials | undefined>;
}

export function storeCredentials(store: DirectoryStore): CredentialSource {
  return {
    async lookup(account: string): Promise<StoredCredentials | undefined> {
      const address = normalizeAddress(account);
      if (address === undefined) return undefined;
      const user = await store.getUser(address);
      if (!user) return undefined;
      return {
        account: user.address,
        passwordHash: user.passwordHash,
        scramSha1: user.scramSha1,
        scramSha256: user.scramSha256,
        cramMd5: user.cramMd5,
      };
    },
  };
}
