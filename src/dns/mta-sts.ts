// MTA-STS policies of the domains we send to (RFC 8461), fetched, cached and kept. The cache is
// the point of the protocol: an attacker on the path can hide the TXT record or block the HTTPS
// fetch, but a policy we already hold stays in force until its max_age runs out (section 5.1,
// section 10). So policies live in memory and in data_dir/mta-sts/<domain>.json, surviving a
// restart, and a failed refresh never drops a policy that has not expired.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { normalizeDomain } from '../mail/address.js';
import { DnsError } from './dns-error.js';
import { fetchPolicyText } from './mta-sts-fetch.js';
import { parsePolicy, parseStsRecord, type MtaStsPolicy } from './mta-sts-policy.js';
import type { DnsClient } from './resolver.js';

export { mxMatchesPolicy, type MtaStsPolicy } from './mta-sts-policy.js';

export interface MtaStsCacheOptions {
  dns: DnsClient;
  /** Policies are kept in <dataDir>/mta-sts/; undefined: in memory only. */
  dataDir?: string;
  /** Port of the policy hosts' HTTPS servers: 443 unless a test says otherwise. */
  httpsPort?: number;
  /**
   * Trust anchors for policy hosts, replacing the system's CAs; undefined: the system's. To add a
   * CA to the system's, pass [...tls.rootCertificates, pem] ([relay] tls_ca_file).
   */
  ca?: string | Buffer | readonly (string | Buffer)[];
  fetchTimeoutMs?: number;
  logger: Logger;
  /** Milliseconds since the epoch; tests move time forward. */
  now?: () => number;
}

/** A policy and when it was fetched (ms since the epoch): it expires maxAge seconds later. */
interface CachedPolicy {
  readonly policy: MtaStsPolicy;
  readonly fetchedAt: number;
}

/** What the _mta-sts TXT lookup said. */
type Announcement = { kind: 'id'; id: string } | { kind: 'none' } | { kind: 'unknown'; reason: string };

/** Section 3.3 suggests a one-minute timeout for the fetch. */
const DEFAULT_FETCH_TIMEOUT_MS = 60_000;
/** Section 3.3: after a failed fetch, wait "five minutes or longer per version ID". */
const FETCH_RETRY_MS = 5 * 60_000;
/**
 * A policy in use is fetched again after a day even when its id has not changed, so that a
 * long max_age does not keep a stale copy when the domain forgot to change the id.
 */
const REFRESH_AFTER_MS = 24 * 3600_000;

export class MtaStsCache {
  /** null: looked on disk, nothing there. */
  private readonly policies = new Map<string, CachedPolicy | null>();
  private readonly failedFetches = new Map<string, { id: string; until: number }>();
  private readonly inFlight = new Map<string, Promise<MtaStsPolicy | undefined>>();
  private readonly now: () => number;

  /** abort(): fetches in flight end at once, and so do later ones. */
  private readonly stopping = new AbortController();

  constructor(private readonly opts: MtaStsCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * The server is stopping: a policy fetch in flight ends now instead of holding the exit for its
   * timeout; its delivery goes on without the new policy (a cached one still applies) and is
   * itself cut by the courier's own stop.
   */
  abort(): void {
    this.stopping.abort();
  }

  /**
   * The policy to apply to mail for `domain`, or undefined when it has none (or none we could
   * learn and none cached). Never throws: every failure is logged and means "what we know".
   */
  async policyFor(domain: string): Promise<MtaStsPolicy | undefined> {
    const name = normalizeDomain(domain);
    if (!name) return undefined;
    const pending = this.inFlight.get(name);
    if (pending) return pending;
    const promise = this.decide(name).finally(() => this.inFlight.delete(name));
    this.inFlight.set(name, promise);
    return promise;
  }

  /** Section 5.1, "Policy Application Control Flow". */
  private async decide(domain: string): Promise<MtaStsPolicy | undefined> {
    const cached = this.cached(domain);
    const announcement = await this.announcement(domain);
    switch (announcement.kind) {
      case 'none':
      case 'unknown':
        // Section 3.3: with no live policy discoverable, an unexpired cached one still applies.
        if (announcement.kind === 'unknown' && cached) {
          this.opts.logger.debug({ domain, reason: announcement.reason }, 'mta-sts: TXT lookup failed, using the cached policy');
        }
        return cached?.policy;
      case 'id': {
        const fresh = cached && cached.policy.id === announcement.id && this.now() - cached.fetchedAt < REFRESH_AFTER_MS;
        if (fresh) return cached.policy;
        return (await this.refresh(domain, announcement.id)) ?? cached?.policy;
      }
    }
  }

  /** Section 3.1: TXT _mta-sts.<domain>. */
  private async announcement(domain: string): Promise<Announcement> {
    try {
      const id = parseStsRecord(await this.opts.dns.txt(`_mta-sts.${domain}`));
      return id === undefined ? { kind: 'none' } : { kind: 'id', id };
    } catch (err) {
      if (err instanceof DnsError && err.permanent) return { kind: 'none' };
      return { kind: 'unknown', reason: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Fetches the policy announced with `id`; undefined (and logged) when that fails. */
  private async refresh(domain: string, id: string): Promise<MtaStsPolicy | undefined> {
    const failed = this.failedFetches.get(domain);
    if (failed && failed.id === id && failed.until > this.now()) return undefined;
    let text: string;
    try {
      text = await fetchPolicyText(domain, {
        dns: this.opts.dns,
        port: this.opts.httpsPort ?? 443,
        ca: this.opts.ca,
        timeoutMs: this.opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
        signal: this.stopping.signal,
      });
    } catch (err) {
      return this.fetchFailed(domain, id, err instanceof Error ? err.message : String(err));
    }
    const parsed = parsePolicy(text);
    if (!parsed.ok) return this.fetchFailed(domain, id, `invalid policy: ${parsed.reason}`);
    const entry: CachedPolicy = { policy: { ...parsed.policy, id }, fetchedAt: this.now() };
    this.failedFetches.delete(domain);
    this.policies.set(domain, entry);
    this.save(domain, entry);
    this.opts.logger.info({ domain, id, mode: entry.policy.mode, mx: entry.policy.mx, max_age: entry.policy.maxAge }, 'mta-sts: policy fetched');
    return entry.policy;
  }

  private fetchFailed(domain: string, id: string, reason: string): undefined {
    this.failedFetches.set(domain, { id, until: this.now() + FETCH_RETRY_MS });
    this.opts.logger.warn({ domain, id, reason }, 'mta-sts: policy fetch failed');
    return undefined;
  }

  /** The unexpired cached policy, from memory or (once per domain) from disk. */
  private cached(domain: string): CachedPolicy | undefined {
    let entry = this.policies.get(domain);
    if (entry === undefined) {
      entry = this.load(domain) ?? null;
      this.policies.set(domain, entry);
    }
    if (!entry) return undefined;
    if (this.now() >= entry.fetchedAt + entry.policy.maxAge * 1000) return undefined;
    return entry;
  }

  private file(domain: string): string | undefined {
    // The domain passed normalizeDomain: letters, digits, "-" and ".", so it is a safe file name.
    return this.opts.dataDir === undefined ? undefined : join(this.opts.dataDir, 'mta-sts', `${domain}.json`);
  }

  private load(domain: string): CachedPolicy | undefined {
    const file = this.file(domain);
    if (!file) return undefined;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.logger.warn({ err, file }, 'mta-sts: cannot read the cached policy');
      return undefined;
    }
    const entry = decodeCachedPolicy(text);
    if (!entry) this.opts.logger.warn({ file }, 'mta-sts: ignoring a malformed cached policy');
    return entry;
  }

  private save(domain: string, entry: CachedPolicy): void {
    const file = this.file(domain);
    if (!file) return;
    try {
      mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
      // Written whole, then renamed: a crash leaves the old policy or the new, never half.
      const temp = `${file}.${process.pid}.tmp`;
      writeFileSync(temp, JSON.stringify(entry) + '\n', { mode: 0o600 });
      renameSync(temp, file);
    } catch (err) {
      this.opts.logger.warn({ err, file }, 'mta-sts: cannot save the policy (kept in memory)');
    }
  }
}

function decodeCachedPolicy(text: string): CachedPolicy | undefined {
  try {
    const value = JSON.parse(text) as { policy?: Partial<MtaStsPolicy>; fetchedAt?: unknown };
    const p = value.policy;
    if (
      typeof value.fetchedAt !== 'number' ||
      !p ||
      (p.mode !== 'enforce' && p.mode !== 'testing' && p.mode !== 'none') ||
      !Array.isArray(p.mx) ||
      !p.mx.every((m) => typeof m === 'string') ||
      typeof p.maxAge !== 'number' ||
      typeof p.id !== 'string'
    ) {
      return undefined;
    }
    return { policy: { mode: p.mode, mx: p.mx, maxAge: p.maxAge, id: p.id }, fetchedAt: value.fetchedAt };
  } catch {
    return undefined;
  }
}
