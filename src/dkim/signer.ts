// DKIM signing of outbound mail (RFC 6376), with mailauth doing the canonicalization and
// hashing. A domain is signed when keys_dir holds a key for it under the configured selector;
// keys are re-read when their file changes, so `postern dkim generate` takes effect without a
// restart. The file is looked at again at most once a second per domain: a stat for every message
// relayed (and, for a domain without a key, a failed one with its error) cost a thread-pool trip
// each, for an answer that changes when an operator acts.

import { readFile, stat } from 'node:fs/promises';
import { dkimSign } from 'mailauth';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { normalizeDomain } from '../mail/address.js';
import { LruMap } from '../util/lru-map.js';
import { dkimKeyPath, dkimKeysDir, parseDkimKey, type DkimAlgorithm } from './dkim-key.js';

export interface MessageSigner {
  /** Returns the message with a DKIM-Signature prepended, or unchanged if the domain has no key. */
  sign(message: Buffer, senderDomain: string): Promise<Buffer>;
}

export interface DkimSignerOptions {
  readonly keysDir: string;
  readonly selector: string;
  readonly logger: Logger;
  /** How long an answer about a domain's key file stands before the file is looked at again (RECHECK_MS). */
  readonly recheckMs?: number;
}

const RECHECK_MS = 1000;
const CHECKED_DOMAINS = 10_000;

/** A key as last read from its file; `mtimeMs` tells when to read it again. */
interface CachedKey {
  readonly mtimeMs: number;
  readonly algorithm: DkimAlgorithm;
  readonly pem: string;
}

/** What the key file of a domain held when it was last looked at: a key, or none. */
interface Checked {
  readonly at: number;
  readonly key: CachedKey | undefined;
}

/** The signer [dkim] asks for, or undefined when signing is off. */
export function createMessageSigner(config: Config, logger: Logger): MessageSigner | undefined {
  if (!config.dkim.sign) return undefined;
  return new DkimSigner({ keysDir: dkimKeysDir(config), selector: config.dkim.selector, logger });
}

export class DkimSigner implements MessageSigner {
  private readonly keys = new Map<string, CachedKey>();
  /** Bounded: relayed mail (trusted networks, say) may come from any number of sender domains. */
  private readonly checked = new LruMap<string, Checked>(CHECKED_DOMAINS);

  constructor(private readonly opts: DkimSignerOptions) {}

  /**
   * Never throws: an unreadable key or a signing error is logged and the message goes out
   * unsigned, as it would before the domain had a key. Holding mail back would turn a key
   * mistake into an outage; the error log line is what prompts the operator to fix it.
   */
  async sign(message: Buffer, senderDomain: string): Promise<Buffer> {
    const domain = normalizeDomain(senderDomain);
    if (domain === undefined) return message;
    try {
      const key = await this.keyFor(domain);
      if (key === undefined) return message;
      const signature = {
        signingDomain: domain,
        selector: this.opts.selector,
        privateKey: key.pem,
        algorithm: `${key.algorithm}-sha256`,
        // relaxed/relaxed survives the whitespace and line-folding changes relays make (section 3.4).
        canonicalization: 'relaxed/relaxed',
      };
      // mailauth signs only what signatureData lists. signTime must be given: without it mailauth
      // reads the clock twice (for the signed header and the emitted one), and a t= that changed
      // in between makes an unverifiable signature.
      const result = await dkimSign(message, { ...signature, signatureData: [signature], signTime: new Date() });
      if (result.errors.length > 0) throw signingError(result.errors[0]);
      return Buffer.concat([Buffer.from(result.signatures, 'latin1'), message]);
    } catch (err) {
      this.opts.logger.error({ err, domain, selector: this.opts.selector }, 'dkim: signing failed; sending unsigned');
      return message;
    }
  }

  /** The domain's key as last seen if that was less than recheckMs ago; else keyFromFile. */
  private async keyFor(domain: string): Promise<CachedKey | undefined> {
    const now = performance.now();
    const last = this.checked.get(domain);
    if (last !== undefined && now - last.at < (this.opts.recheckMs ?? RECHECK_MS)) return last.key;
    const key = await this.keyFromFile(domain);
    this.checked.set(domain, { at: now, key });
    return key;
  }

  /** The domain's key, from the cache unless its file changed; undefined if it has none. */
  private async keyFromFile(domain: string): Promise<CachedKey | undefined> {
    const path = dkimKeyPath(this.opts.keysDir, domain, this.opts.selector);
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(path)).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.keys.delete(domain);
        return undefined;
      }
      throw err;
    }
    const cached = this.keys.get(domain);
    if (cached && cached.mtimeMs === mtimeMs) return cached;
    const key = parseDkimKey(await readFile(path), domain, this.opts.selector);
    const fresh: CachedKey = {
      mtimeMs,
      algorithm: key.algorithm,
      pem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
    this.keys.set(domain, fresh);
    return fresh;
  }
}

/** mailauth reports errors as `{ err, ... }` records rather than throwing. */
function signingError(entry: unknown): Error {
  const err = (entry as { err?: unknown } | undefined)?.err ?? entry;
  return err instanceof Error ? err : new Error(String(err));
}
