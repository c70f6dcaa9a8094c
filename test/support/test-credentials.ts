// Accounts for mechanism tests, held in memory: real secrets computed from passwords (as
// `postern user add` does), or given directly for the RFC examples (user "user", fixed salts).

import { computeUserSecrets } from '../../src/auth/user-secrets.js';
import { normalizeAddress } from '../../src/mail/address.js';
import type { CredentialSource, StoredCredentials } from '../../src/sasl/credentials.js';
import type { SaslExchange, SaslStep } from '../../src/sasl/mechanism.js';

export class MemoryCredentials implements CredentialSource {
  private readonly accounts = new Map<string, StoredCredentials>();

  /** Accounts with these passwords, with CRAM-MD5 secrets too. */
  static async withPasswords(passwords: Record<string, string>): Promise<MemoryCredentials> {
    const source = new MemoryCredentials();
    for (const [account, password] of Object.entries(passwords)) {
      source.add({ account: key(account), ...(await computeUserSecrets(password, { cramMd5: true })) });
    }
    return source;
  }

  add(credentials: StoredCredentials): this {
    this.accounts.set(key(credentials.account), credentials);
    return this;
  }

  async lookup(account: string): Promise<StoredCredentials | undefined> {
    return this.accounts.get(key(account));
  }
}

function key(account: string): string {
  return normalizeAddress(account) ?? account;
}

/** Runs an exchange: the initial response, then each response in turn; returns every step. */
export async function runExchange(
  exchange: SaslExchange,
  initial: Buffer | string | undefined,
  ...responses: (Buffer | string)[]
): Promise<SaslStep[]> {
  const toBuffer = (b: Buffer | string) => (typeof b === 'string' ? Buffer.from(b) : b);
  const steps = [await exchange.start(initial === undefined ? undefined : toBuffer(initial))];
  for (const response of responses) steps.push(await exchange.step(toBuffer(response)));
  return steps;
}

/** The last step, which a test usually asserts on. */
export function lastStep(steps: readonly SaslStep[]): SaslStep {
  return steps[steps.length - 1] as SaslStep;
}
