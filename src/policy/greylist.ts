// Greylisting, as postgrey does it: the first time a (client network, sender, recipient) triplet
// is seen, RCPT gets a temporary refusal; a real MTA queues the message and retries (RFC 5321
// 4.5.4.1), a spam engine that fires and forgets does not.
//
//   first sighting        -> remember (first = last = now), greylisted for `delay`
//   retry before delay    -> last = now, still greylisted (the reply says how long is left)
//   retry after delay     -> passes; last = now. The first such pass counts towards the client's
//                            auto-whitelist (at most once an hour, as postgrey counts)
//   later mail, same one  -> passes while it keeps coming: last = now each time
//   not seen for max_age  -> forgotten; the next attempt starts over
//   never passed and first seen longer than retry_window ago -> starts over
//   a client network with auto_whitelist_clients counted passes -> passes without a triplet
//
// Where this follows postgrey (its --delay=300, --max-age=35, --retry-window=2,
// --auto-whitelist-clients=5, --lookup-by-subnet defaults and its sender substitutions) and where
// it goes further (BATV and SRS tags) is said below at each. The exemptions (DNSWL, SPF) and the
// reply are src/policy/greylist-gate.ts's; this file only decides from the store and the clock.

import type { Logger } from 'pino';
import type { GreylistClient, GreylistStore, GreylistTriplet } from '../store/store.js';
import { throttleKey } from './auth-throttle.js';
import { clientKey } from './connection-limiter.js';
import { DAY_MS, HOUR_MS } from './rate-window.js';

export interface GreylistSettings {
  readonly delayMs: number;
  /** A triplet or client not seen for this long is forgotten (postgrey --max-age, 35 days). */
  readonly maxAgeMs: number;
  /** A triplet that never passed is forgotten this long after its first sighting (--retry-window, 2 days). */
  readonly retryWindowMs: number;
  /** Passes (first retries of distinct triplets) after which a client network skips greylisting; 0 = never. */
  readonly autoWhitelistClients: number;
  /** Group clients by IPv4 /24 and IPv6 /64 (--lookup-by-subnet), since big senders retry from another host of the farm. */
  readonly lookupBySubnet: boolean;
}

export type GreylistVerdict =
  | {
      readonly kind: 'greylisted';
      readonly triplet: GreylistTriplet;
      /** Whole seconds until a retry passes, at least 1. */
      readonly retryInSeconds: number;
      /** First sighting (or the old one was forgotten), rather than an early retry. */
      readonly fresh: boolean;
    }
  | {
      readonly kind: 'passed';
      readonly triplet: GreylistTriplet;
      /** This is the retry that got through; false for a triplet that had passed before. */
      readonly retried: boolean;
      /** This pass made the client's network reach auto_whitelist_clients. */
      readonly clientWhitelisted: boolean;
    }
  | { readonly kind: 'whitelisted-client'; readonly client: string; readonly passed: number };

export class Greylist {
  private lastMaintenance: number | undefined;

  constructor(
    private readonly store: GreylistStore,
    private readonly settings: GreylistSettings,
    private readonly now: () => number = Date.now,
    private readonly logger?: Logger,
  ) {}

  async check(clientIp: string, sender: string, recipient: string): Promise<GreylistVerdict> {
    const now = this.now();
    await this.maintain(now);
    const s = this.settings;
    const client = clientNetwork(clientIp, s.lookupBySubnet);

    let counted: GreylistClient | undefined;
    if (s.autoWhitelistClients > 0) {
      counted = await this.store.greylistClient(client);
      if (counted && now - counted.lastSeen > s.maxAgeMs) counted = undefined;
      if (counted && counted.passed >= s.autoWhitelistClients) {
        // Refreshed at most hourly, as postgrey does: it keeps an active client from aging out
        // without a write for every recipient.
        if (now - counted.lastSeen >= HOUR_MS) await this.store.saveGreylistClient(client, { passed: counted.passed + 1, lastSeen: now });
        return { kind: 'whitelisted-client', client, passed: counted.passed };
      }
    }

    const triplet: GreylistTriplet = { client, sender: greylistSender(sender), recipient: recipient.toLowerCase() };
    const seen = await this.store.greylistSighting(triplet);
    let first = now;
    let passedBefore = false;
    if (seen) {
      passedBefore = seen.lastSeen - seen.firstSeen >= s.delayMs;
      const forgotten = now - seen.lastSeen > s.maxAgeMs || (!passedBefore && now - seen.firstSeen > s.retryWindowMs);
      if (!forgotten) first = seen.firstSeen;
    }
    await this.store.saveGreylistSighting(triplet, { firstSeen: first, lastSeen: now });

    const waited = now - first;
    if (waited < s.delayMs) {
      return { kind: 'greylisted', triplet, retryInSeconds: Math.max(1, Math.ceil((s.delayMs - waited) / 1000)), fresh: first === now };
    }
    let clientWhitelisted = false;
    // postgrey counts a client's first passes of triplets, at most one an hour, so that a burst
    // of retried spam from one network does not whitelist it within minutes.
    if (!passedBefore && s.autoWhitelistClients > 0 && (counted === undefined || now - counted.lastSeen >= HOUR_MS)) {
      const passed = (counted?.passed ?? 0) + 1;
      await this.store.saveGreylistClient(client, { passed, lastSeen: now });
      clientWhitelisted = passed >= s.autoWhitelistClients;
    }
    return { kind: 'passed', triplet, retried: !passedBefore, clientWhitelisted };
  }

  /**
   * Once a day (and at the first check after start), deletes what check() would ignore anyway:
   * entries past max_age, and triplets that never passed once their retry window is over. The
   * decisions never depend on it; it only keeps the tables small. A failure is logged and retried
   * the next day.
   */
  private async maintain(now: number): Promise<void> {
    if (this.lastMaintenance !== undefined && now - this.lastMaintenance < DAY_MS) return;
    this.lastMaintenance = now;
    const s = this.settings;
    try {
      const gone = await this.store.purgeGreylist({ seenBefore: now - s.maxAgeMs, unpassedSeenBefore: now - s.retryWindowMs, delayMs: s.delayMs });
      if (gone.triplets + gone.clients > 0) this.logger?.info(gone, 'greylist purged');
    } catch (err) {
      this.logger?.warn({ err }, 'cannot purge the greylist');
    }
  }
}

/**
 * The client as the greylist knows it: its address (canonical), or with lookupBySubnet its IPv4
 * /24 or IPv6 /64 (postgrey 1.37's --ipv4cidr=24 and --ipv6cidr=64 defaults).
 */
export function clientNetwork(ip: string, bySubnet: boolean): string {
  const key = clientKey(ip);
  if (!bySubnet) return key;
  if (key.includes(':')) return throttleKey(key);
  const octets = key.split('.');
  return octets.length === 4 ? `${octets.slice(0, 3).join('.')}.0/24` : key;
}

/**
 * The sender as the greylist keys it, so that a sender whose address changes with every message
 * (bounce tracking) is still one sender. Like postgrey: lower case, the "+extension" dropped, and
 * each number standing alone in the local part (VERP, "bounce-12345-67@") replaced by "#".
 * Beyond postgrey: a BATV tag (prvs=, msprvs1=, btv1=; draft-levine-smtp-batv) is dropped, and an
 * SRS address (src/srs/) loses its hash and day, which change daily. The null sender stays "".
 */
export function greylistSender(sender: string): string {
  const at = sender.lastIndexOf('@');
  if (at < 0) return sender.toLowerCase();
  let local = sender.slice(0, at).toLowerCase();
  const domain = sender.slice(at + 1).toLowerCase();
  local = local
    .replace(/^(?:prvs|msprvs1|btv1)=[^=]+=/, '')
    .replace(/^srs0=[^=]+=[^=]+=/, 'srs0=')
    .replace(/^srs1=[^=]+=([^=]+)==[^=]+=[^=]+=/, 'srs1=$1==')
    .replace(/\+.*$/, '')
    .replace(/\b\d+\b/g, '#');
  return `${local}@${domain}`;
}
