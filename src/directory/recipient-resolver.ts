// Resolving an address on a local domain to the mailboxes that receive it: users, aliases (expanded
// recursively), plus-addressing, postmaster and the domain's catch-all, in that order.
// Every question goes to the store as it is asked: domains, users and aliases change while the
// server runs, and a stale cache would bounce mail for a user created a minute ago.

import type { DirectoryStore } from '../store/store.js';
import { normalizeDomain, splitAddress } from '../mail/address.js';
import { lookupForm } from './recipient-address.js';

/** Aliases of aliases deeper than this are a configuration mistake, treated like a loop. */
export const MAX_ALIAS_DEPTH = 10;

export interface ResolverOptions {
  /** Plus-addressing separator ("+"): alice+tag@d reaches alice@d. "" turns it off. */
  readonly recipientDelimiter: string;
  /** Address that postmaster mail goes to; "" means the mailbox postmaster@<hostname>. */
  readonly postmaster: string;
  readonly hostname: string;
}

export type Resolution =
  | {
      readonly kind: 'resolved';
      /** Local user addresses, without duplicates. */
      readonly mailboxes: readonly string[];
      /** Alias targets outside our domains: the queue relays a copy to each. */
      readonly remote: readonly string[];
      /** Alias targets that lead nowhere (no such user, bad syntax): worth a log line. */
      readonly dangling: readonly string[];
    }
  | { readonly kind: 'unknown' }
  /** The alias chain that came back to an address already on it, or grew too deep. */
  | { readonly kind: 'loop'; readonly chain: readonly string[] }
  | { readonly kind: 'too-deep'; readonly chain: readonly string[] };

const UNKNOWN: Resolution = { kind: 'unknown' };

export class RecipientResolver {
  constructor(
    private readonly store: DirectoryStore,
    private readonly opts: ResolverOptions,
  ) {}

  /** `address` is in lookup form (local part lower case, normalized domain) on a local domain. */
  async resolveLocal(address: string): Promise<Resolution> {
    return this.resolveOnLocalDomain(address, []);
  }

  /** Where mail to postmaster goes (RFC 5321 4.5.1): it must always reach someone. */
  async resolvePostmaster(): Promise<Resolution> {
    return this.postmasterTarget([]);
  }

  private async resolveOnLocalDomain(address: string, path: readonly string[]): Promise<Resolution> {
    if (path.includes(address)) return { kind: 'loop', chain: [...path, address] };
    if (path.length > MAX_ALIAS_DEPTH) return { kind: 'too-deep', chain: [...path, address] };
    const parts = splitAddress(address);
    if (!parts) return UNKNOWN;
    const here = [...path, address];

    const named = await this.resolveNamed(address, here);
    if (named) return named;

    const base = this.plusBase(parts.local);
    if (base !== undefined) {
      const viaBase = await this.resolveNamed(`${base}@${parts.domain}`, here);
      if (viaBase) return viaBase;
    }

    // Postmaster comes before the catch-all so that a catch-all cannot swallow it (RFC 5321 4.5.1).
    if (parts.local === 'postmaster') return this.postmasterTarget(here);

    const catchAll = await this.store.aliasTargets(`@${parts.domain}`);
    if (catchAll.length > 0) return this.expand(catchAll, here);
    return UNKNOWN;
  }

  /**
   * A user or an alias of that exact name. A user is always a mailbox and never expanded, even if
   * an alias of the same name exists, so an alias can never take a user's mail away.
   */
  private async resolveNamed(address: string, here: readonly string[]): Promise<Resolution | undefined> {
    const user = await this.store.getUser(address);
    if (user) return { kind: 'resolved', mailboxes: [user.address], remote: [], dangling: [] };
    const targets = await this.store.aliasTargets(address);
    if (targets.length > 0) return this.expand(targets, here);
    return undefined;
  }

  /** "alice+tag" -> "alice"; undefined when plus-addressing is off or does not apply. */
  private plusBase(local: string): string | undefined {
    const delimiter = this.opts.recipientDelimiter;
    if (delimiter === '') return undefined;
    const at = local.indexOf(delimiter);
    return at > 0 ? local.slice(0, at) : undefined;
  }

  private async expand(targets: readonly string[], here: readonly string[]): Promise<Resolution> {
    const mailboxes = new Set<string>();
    const remote: string[] = [];
    const dangling: string[] = [];
    for (const target of targets) {
      const r = await this.resolveTarget(target, here);
      switch (r.kind) {
        case 'loop':
        case 'too-deep':
          return r;
        case 'unknown':
          dangling.push(target);
          break;
        case 'resolved':
          r.mailboxes.forEach((m) => mailboxes.add(m));
          remote.push(...r.remote);
          dangling.push(...r.dangling);
          break;
        default:
          return assertNever(r);
      }
    }
    if (mailboxes.size === 0 && remote.length === 0) return UNKNOWN;
    return { kind: 'resolved', mailboxes: [...mailboxes], remote, dangling };
  }

  /** An alias target, or the configured postmaster: a local address to resolve, or a remote one. */
  private async resolveTarget(target: string, here: readonly string[]): Promise<Resolution> {
    const parts = splitAddress(target.trim());
    const domain = parts && normalizeDomain(parts.domain);
    if (!parts || !domain) return UNKNOWN;
    if (!(await this.store.isLocalDomain(domain))) {
      // Kept as written (quotes and case of the local part matter to the remote server).
      return { kind: 'resolved', mailboxes: [], remote: [`${parts.local}@${domain}`], dangling: [] };
    }
    return this.resolveOnLocalDomain(`${lookupForm(parts.local)}@${domain}`, here);
  }

  /**
   * The configured postmaster if it resolves; otherwise postmaster@<hostname>, a mailbox outside
   * every domain that the queue manager delivers to directly. Postmaster mail is never refused or
   * lost because of a configuration mistake, which is why loops here fall back too.
   */
  private async postmasterTarget(here: readonly string[]): Promise<Resolution> {
    if (this.opts.postmaster !== '') {
      const r = await this.resolveTarget(this.opts.postmaster, here);
      if (r.kind === 'resolved') return r;
    }
    return { kind: 'resolved', mailboxes: [this.hostnameMailbox()], remote: [], dangling: [] };
  }

  private hostnameMailbox(): string {
    const host = normalizeDomain(this.opts.hostname) ?? this.opts.hostname.toLowerCase();
    return `postmaster@${host}`;
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected resolution ${JSON.stringify(x)}`);
}
