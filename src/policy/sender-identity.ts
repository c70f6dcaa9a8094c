// Which addresses an authenticated account may send as. Without this check any user could send
// mail as the CEO, and our own domain's SPF and DKIM would vouch for the forgery (RFC 6409 6.1:
// the submission server may check that the sender is authorized for the authenticated identity).
// An account owns: its own address and plus-addresses of it; aliases that deliver to it (not
// catch-alls: a catch-all would hand every unused address of the domain to its targets); and the
// addresses or "@domains" granted to it (`postern user grant`). Per account, sender_policy "any"
// turns the check off.

import { reply, type Reply } from '../mail/reply.js';
import type { DirectoryStore, SenderPolicy, SubmissionStore } from '../store/store.js';
import { normalizeAddress, normalizeDomain, splitAddress } from '../mail/address.js';
import { readOriginators } from './header-from.js';
import { lookupForm } from '../directory/recipient-address.js';
import { MAX_ALIAS_DEPTH } from '../directory/recipient-resolver.js';

export interface SenderIdentityOptions {
  /** [submission] sender_policy, for accounts without their own. */
  defaultPolicy: SenderPolicy;
  /** Plus-addressing separator ("+"); "" turns plus-addressing off. */
  recipientDelimiter: string;
}

export class SenderIdentityPolicy {
  constructor(
    private readonly store: DirectoryStore & SubmissionStore,
    private opts: SenderIdentityOptions,
  ) {}

  /** New options from a reloaded config. */
  update(opts: SenderIdentityOptions): void {
    this.opts = opts;
  }

  /** At MAIL FROM: undefined = allowed; else 553 5.7.1. `sender` is '' for the null sender. */
  async checkEnvelopeSender(account: string, sender: string): Promise<Reply | undefined> {
    const user = accountKey(account);
    if ((await this.policyOf(user)) === 'any') return undefined;
    // Bounces come from the server itself (RFC 5321 4.5.5); a user sending with <> would escape
    // this check and could forge delivery reports.
    if (sender === '') return notOwned('', user);
    return (await this.owns(user, sender)) ? undefined : notOwned(sender, user);
  }

  /**
   * After DATA: every mailbox of the From header, and the Sender header if present, must be owned
   * (what the recipient's client shows is the header From, not MAIL FROM). A message without
   * exactly one readable From is refused as malformed: 550 5.6.0 (RFC 3463 5.6.0, "other or
   * undefined media error"; RFC 5322 3.6 requires exactly one From).
   */
  async checkHeaderFrom(account: string, message: Buffer): Promise<Reply | undefined> {
    const user = accountKey(account);
    if ((await this.policyOf(user)) === 'any') return undefined;
    const originators = readOriginators(message);
    switch (originators.kind) {
      case 'invalid':
        return reply(550, '5.6.0', `Message refused: ${originators.why} (RFC 5322 section 3.6)`);
      case 'ok':
        break;
      default:
        return assertNever(originators);
    }
    const addresses = originators.sender === undefined ? originators.from : [...originators.from, originators.sender];
    for (const address of addresses) {
      if (!(await this.owns(user, address))) return notOwned(address, user);
    }
    return undefined;
  }

  private async policyOf(user: string): Promise<SenderPolicy> {
    return (await this.store.getUserLimits(user)).senderPolicy ?? this.opts.defaultPolicy;
  }

  private async owns(user: string, address: string): Promise<boolean> {
    const parts = splitAddress(address.trim());
    const domain = parts && normalizeDomain(parts.domain);
    if (!parts || !domain) return false; // address literals and bad syntax belong to no one
    const sender = `${lookupForm(parts.local)}@${domain}`;
    if (sender === user) return true;

    const grants = await this.store.listSenderGrants(user);
    if (grants.includes(`@${domain}`) || this.withPlusBase(sender).some((c) => grants.includes(c))) return true;
    return this.deliversTo(sender, user, []);
  }

  /**
   * Whether mail to `address` reaches `user`, resolved in the recipient resolver's order: the
   * address itself (a user, or an alias expanded recursively), then its plus base. Another user's
   * address never counts, even "alice+x@d" when a user of that exact name exists. Loops and chains
   * deeper than MAX_ALIAS_DEPTH own nothing.
   */
  private async deliversTo(address: string, user: string, path: readonly string[]): Promise<boolean> {
    const named = await this.namedDeliversTo(address, user, path);
    if (named !== undefined) return named;
    const [, base] = this.withPlusBase(address);
    return base !== undefined && (await this.namedDeliversTo(base, user, path)) === true;
  }

  /** undefined when `address` is neither a user nor an alias. */
  private async namedDeliversTo(address: string, user: string, path: readonly string[]): Promise<boolean | undefined> {
    if (address === user) return true;
    if (path.includes(address) || path.length > MAX_ALIAS_DEPTH) return false;
    if (await this.store.getUser(address)) return false;
    const targets = await this.store.aliasTargets(address);
    if (targets.length === 0) return undefined;
    for (const target of targets) {
      const normalized = normalizeTarget(target);
      if (normalized !== undefined && (await this.deliversTo(normalized, user, [...path, address]))) return true;
    }
    return false;
  }

  /** [address] and, for "alice+tag@d", also "alice@d". */
  private withPlusBase(address: string): string[] {
    const delimiter = this.opts.recipientDelimiter;
    const at = address.lastIndexOf('@');
    const cut = delimiter === '' ? -1 : address.indexOf(delimiter);
    return cut > 0 && cut < at ? [address, address.slice(0, cut) + address.slice(at)] : [address];
  }
}

function notOwned(sender: string, user: string): Reply {
  // RFC 3463 5.7.1: delivery not authorized; 553: mailbox name not allowed (RFC 5321 4.2.3).
  return reply(553, '5.7.1', `<${sender}>: Sender address not owned by user ${user}`);
}

function normalizeTarget(target: string): string | undefined {
  const parts = splitAddress(target.trim());
  const domain = parts && normalizeDomain(parts.domain);
  return parts && domain ? `${lookupForm(parts.local)}@${domain}` : undefined;
}

function accountKey(account: string): string {
  return normalizeAddress(account) ?? account;
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}
