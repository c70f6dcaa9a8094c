// Counting open connections, per client IP and in all, so that one client (or a botnet) cannot use
// up every socket and file descriptor. The server answers a refusal with 421 4.7.0 and closes
// (RFC 5321 3.8: a server may close with 421 when it cannot serve the client now).
// Trusted networks ([limits] trusted_networks: loopback by default) are exempt from the per-IP
// cap, as Postfix exempts mynetworks from anvil's: a web application or proxy on the same host
// opens many connections from one address. They still count towards the total.

import { isIPv6 } from 'node:net';
import type { NetworkList } from '../util/network-list.js';

export type AcquireResult = 'ok' | 'per-ip' | 'total';

export class ConnectionLimiter {
  private readonly perIp = new Map<string, number>();
  private count = 0;

  constructor(
    private readonly maxPerIp: number,
    private readonly maxTotal: number,
    private readonly trusted?: NetworkList,
  ) {}

  /** Open connections now. */
  get total(): number {
    return this.count;
  }

  /** Counts a new connection, or says which limit it would break (and then counts nothing). */
  tryAcquire(ip: string): AcquireResult {
    if (this.count >= this.maxTotal) return 'total';
    const key = clientKey(ip);
    const open = this.perIp.get(key) ?? 0;
    if (open >= this.maxPerIp && !this.trusted?.contains(key)) return 'per-ip';
    this.perIp.set(key, open + 1);
    this.count++;
    return 'ok';
  }

  /** Forgets one connection from `ip`; a release without an acquire is ignored, never negative. */
  release(ip: string): void {
    const key = clientKey(ip);
    const open = this.perIp.get(key);
    if (open === undefined) return;
    if (open <= 1) this.perIp.delete(key);
    else this.perIp.set(key, open - 1);
    this.count--;
  }
}

/**
 * One key per client. A dual-stack socket shows an IPv4 client as "::ffff:192.0.2.1", and IPv6 has
 * many spellings of one address ("::1", "0:0:0:0:0:0:0:1"); each must share one budget, or a client
 * could double its connections just by how it connects.
 */
export function clientKey(ip: string): string {
  if (!isIPv6(ip)) return ip.toLowerCase();
  let canonical: string;
  try {
    // The WHATWG URL parser prints IPv6 hosts in RFC 5952 canonical form.
    canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase(); // zone ids ("fe80::1%eth0") are not URL hosts; count them as given
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const [, highText = '', lowText = ''] = mapped;
  const high = parseInt(highText, 16);
  const low = parseInt(lowText, 16);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}
