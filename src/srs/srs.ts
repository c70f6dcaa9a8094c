// The Sender Rewriting Scheme, SRS0 form (Shevek's "Sender Rewriting Scheme" paper, as libsrs2
// and postsrsd implement it). A forwarder that relays mail from a sender at another domain must
// not keep that sender in MAIL FROM: the receiver checks SPF for the sender's domain, and our IP
// is not in it. So the envelope sender becomes an address at our domain that encodes the original:
//
//   SRS0=HHHH=TT=example.org=alice@forwarder.test
//
// TT is the day it was made (days since the epoch, mod 1024, as two base32 characters); HHHH the
// first four base64 characters of HMAC-SHA1(secret, TT + domain + local), lower-cased first. A
// bounce to that address is delivered to alice@example.org only if the hash is ours (no one can
// make us relay to an address of their choice) and the day is less than MAX_AGE_DAYS old (a
// leaked address stops working). Re-forwarding an SRS address (the paper's SRS1) is not done:
// an SRS0 sender is wrapped again, which is longer but reverses the same way, one hop at a time.

import { createHmac, timingSafeEqual } from 'node:crypto';

/** The paper's and postsrsd's default: a bounce may come back for three weeks. */
export const MAX_AGE_DAYS = 21;
const HASH_LENGTH = 4;
const DAY_MS = 24 * 60 * 60 * 1000;
/** RFC 4648 base32: 1024 days in two characters of five bits. */
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const TIMESTAMP_CYCLE = 1024;

export type SrsReversal =
  /** The original sender, to deliver the bounce to. */
  | { readonly kind: 'valid'; readonly address: string }
  /** Looks like SRS0 but the hash is not ours, or the parts do not parse. */
  | { readonly kind: 'forged' }
  | { readonly kind: 'expired'; readonly ageDays: number }
  /** Not an SRS0 local part at all: an ordinary address. */
  | { readonly kind: 'not-srs' };

export class SrsCodec {
  /** `now` is injectable so tests can move time past the expiry. */
  constructor(
    private readonly secret: Buffer,
    private readonly now: () => number = Date.now,
  ) {
    if (secret.length < 16) throw new Error('the SRS secret must be at least 16 bytes');
  }

  /** The SRS0 address at `forwarderDomain` that stands for `sender` (local@domain). */
  forward(sender: string, forwarderDomain: string): string {
    const at = sender.lastIndexOf('@');
    if (at <= 0 || at === sender.length - 1) throw new Error(`not an address: ${sender}`);
    const local = sender.slice(0, at);
    const domain = sender.slice(at + 1);
    const timestamp = encodeDay(this.today());
    return `SRS0=${this.hash(timestamp, domain, local)}=${timestamp}=${domain}=${local}@${forwarderDomain}`;
  }

  /** What an SRS0 local part (the part before our domain) stands for, checked. */
  reverse(localPart: string): SrsReversal {
    // The separator after "SRS0" may be "=", "+" or "-" (the paper lets forwarders choose).
    const m = /^srs0[=+-]([^=]*)=([^=]*)=([^=]*)=(.+)$/is.exec(localPart);
    if (!m) return { kind: 'not-srs' };
    const [, hash = '', timestamp = '', domain = '', local = ''] = m;
    if (!/^[A-Za-z0-9+/]{4}$/.test(hash) || domain === '' || !/^[a-z2-7]{2}$/i.test(timestamp)) return { kind: 'forged' };
    // libsrs2 accepts a hash whose case was changed on the way (some MTAs lower-case local
    // parts); the lost bits are the price of getting bounces through them.
    // Timestamps are hashed lower-cased, so only the hash itself needs folding here.
    const expected = Buffer.from(this.hash(timestamp, domain, local).toLowerCase());
    if (!timingSafeEqual(expected, Buffer.from(hash.toLowerCase()))) {
      return { kind: 'forged' };
    }
    const made = decodeDay(timestamp);
    // The day wraps at 1024; a timestamp "in the future" is one from more than 1024-x days ago.
    const ageDays = (((this.today() - made) % TIMESTAMP_CYCLE) + TIMESTAMP_CYCLE) % TIMESTAMP_CYCLE;
    if (ageDays > MAX_AGE_DAYS) return { kind: 'expired', ageDays };
    return { kind: 'valid', address: `${local}@${domain}` };
  }

  private today(): number {
    return Math.floor(this.now() / DAY_MS) % TIMESTAMP_CYCLE;
  }

  private hash(timestamp: string, domain: string, local: string): string {
    const mac = createHmac('sha1', this.secret);
    for (const part of [timestamp, domain, local]) mac.update(part.toLowerCase());
    return mac.digest('base64').slice(0, HASH_LENGTH);
  }
}

/** True for a local part in the SRS0 form, whether or not its hash checks out. */
export function isSrsLocalPart(localPart: string): boolean {
  return /^srs0[=+-]/i.test(localPart);
}

function encodeDay(day: number): string {
  return `${BASE32[(day >> 5) & 31]}${BASE32[day & 31]}`;
}

function decodeDay(timestamp: string): number {
  const t = timestamp.toUpperCase();
  return (BASE32.indexOf(t[0] ?? 'A') << 5) | BASE32.indexOf(t[1] ?? 'A');
}
