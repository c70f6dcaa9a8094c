// The DOMAIN argument of commands about one local domain (dkim, dns): normalized the way the
// store keeps domains, so "Example.TEST." names the same domain as "example.test".

import { normalizeDomain } from '../mail/address.js';
import type { Store } from '../store/store.js';
import { CliError } from './cli-error.js';

/** The domain in lower case and A-labels; a CliError for a name that is not a domain. */
export function domainArgument(name: string): string {
  const domain = normalizeDomain(name);
  if (domain === undefined) throw new CliError(`"${name}" is not a valid domain name`);
  return domain;
}

/** Like domainArgument, and the domain must be one we receive mail for. */
export async function localDomainArgument(store: Store, name: string): Promise<string> {
  const domain = domainArgument(name);
  if (!(await store.isLocalDomain(domain))) {
    throw new CliError(`"${domain}" is not a local domain; add it first (postern domain add ${domain})`);
  }
  return domain;
}
