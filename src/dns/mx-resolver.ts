// Where mail for a domain goes: RFC 5321 section 5.1. The MX records in preference order, equal
// preferences shuffled so that load spreads over them; each host with its IPv4 and IPv6
// addresses; no MX at all means the domain itself is the host (the "implicit MX"); a lone
// "0 ." record is a null MX (RFC 7505), the domain's statement that it takes no mail.

import { isIP } from 'node:net';
import { normalizeDomain } from '../mail/address.js';
import { DnsError } from './dns-error.js';
import type { DnsClient, MxRecord } from './resolver.js';

export interface NextHop {
  /** The MX host name (A-labels, lower case), or an address for an address literal. */
  name: string;
  /** IPv4 addresses first, then IPv6. Never empty. */
  addresses: string[];
  preference: number;
}

export type NextHops =
  | { kind: 'hosts'; hosts: NextHop[] }
  /** RFC 7505: the domain accepts no mail; bounce at once with 5.1.10. */
  | { kind: 'null-mx' }
  /** NXDOMAIN, or a domain with neither usable MX nor address records: bounce (5.1.2). */
  | { kind: 'no-such-domain' };

export interface MxResolverOptions {
  /** At most this many MX hosts are looked up and returned (a domain may list hundreds). */
  maxHosts?: number;
  /** Uniform in [0, 1), for shuffling equal preferences; tests may pass their own. */
  random?: () => number;
}

const DEFAULT_MAX_HOSTS = 10;

type HostAddresses = { kind: 'found'; addresses: string[] } | { kind: 'none' } | { kind: 'tempfail'; error: DnsError };

export class MxResolver {
  private readonly maxHosts: number;
  private readonly random: () => number;

  constructor(
    private readonly dns: DnsClient,
    opts: MxResolverOptions = {},
  ) {
    this.maxHosts = opts.maxHosts ?? DEFAULT_MAX_HOSTS;
    this.random = opts.random ?? Math.random;
  }

  /** Throws DnsError TEMPFAIL when DNS gives no answer; the delivery should be retried. */
  async resolve(domain: string): Promise<NextHops> {
    const literal = addressLiteral(domain);
    if (literal) return { kind: 'hosts', hosts: [{ name: literal, addresses: [literal], preference: 0 }] };

    // IDN domains are looked up by their A-labels (RFC 5890 section 2.3.2.1).
    const name = normalizeDomain(domain);
    if (!name) return { kind: 'no-such-domain' };

    let records: MxRecord[];
    try {
      records = await this.dns.mx(name);
    } catch (err) {
      if (!(err instanceof DnsError)) throw err;
      switch (err.code) {
        case 'NXDOMAIN':
          return { kind: 'no-such-domain' };
        case 'NODATA':
          return this.implicitMx(name);
        case 'TEMPFAIL':
          throw err;
      }
    }
    if (isNullMx(records)) return { kind: 'null-mx' };
    // RFC 7505 section 3: a null MX beside real ones is a mistake; the real ones still work.
    const usable = records.filter((r) => !isRoot(r.exchange));
    if (usable.length === 0) return this.implicitMx(name);
    return this.explicitMx(name, usable);
  }

  /** RFC 5321 section 5.1: no MX records, so the domain's own address records are the host. */
  private async implicitMx(name: string): Promise<NextHops> {
    const found = await this.addressesOf(name);
    switch (found.kind) {
      case 'found':
        return { kind: 'hosts', hosts: [{ name, addresses: found.addresses, preference: 0 }] };
      case 'none':
        return { kind: 'no-such-domain' };
      case 'tempfail':
        throw found.error;
    }
  }

  private async explicitMx(domain: string, records: MxRecord[]): Promise<NextHops> {
    const ordered = this.order(dedupe(records)).slice(0, this.maxHosts);
    const looked = await Promise.all(ordered.map(async (r) => ({ record: r, found: await this.addressesOf(r.exchange) })));
    const hosts: NextHop[] = [];
    let tempfail: DnsError | undefined;
    for (const { record, found } of looked) {
      switch (found.kind) {
        case 'found':
          hosts.push({ name: record.exchange, addresses: found.addresses, preference: record.priority });
          break;
        case 'none':
          // RFC 5321 section 5.1: a host whose name does not resolve is skipped.
          break;
        case 'tempfail':
          tempfail ??= found.error;
          break;
      }
    }
    if (hosts.length > 0) return { kind: 'hosts', hosts };
    // Nothing usable: defer if any host may yet resolve, else the domain cannot take mail.
    if (tempfail) throw new DnsError('TEMPFAIL', `MX ${domain}`, `no MX host could be resolved (${tempfail.message})`, { cause: tempfail });
    return { kind: 'no-such-domain' };
  }

  /** Ascending preference; equal preferences in random order (RFC 5321 section 5.1). */
  private order(records: MxRecord[]): MxRecord[] {
    const shuffled = [...records];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j] as MxRecord, shuffled[i] as MxRecord];
    }
    // Array.prototype.sort is stable, so the shuffle survives within each preference.
    return shuffled.sort((a, b) => a.priority - b.priority);
  }

  /** A and AAAA together; one family failing temporarily does not hide the other's addresses. */
  private async addressesOf(host: string): Promise<HostAddresses> {
    // RFC 5321 section 5.1 wants a name here; an MX naming an address is a common
    // misconfiguration, and the address is used as given rather than looked up as a name.
    if (isIP(host)) return { kind: 'found', addresses: [host] };
    const [v4, v6] = await Promise.allSettled([this.dns.a(host), this.dns.aaaa(host)]);
    const addresses = [...fulfilled(v4), ...fulfilled(v6)];
    if (addresses.length > 0) return { kind: 'found', addresses: [...new Set(addresses)] };
    for (const result of [v4, v6]) {
      if (result.status === 'rejected') {
        const err: unknown = result.reason;
        if (!(err instanceof DnsError)) throw err;
        if (err.code === 'TEMPFAIL') return { kind: 'tempfail', error: err };
      }
    }
    return { kind: 'none' };
  }
}

function fulfilled(result: PromiseSettledResult<string[]>): string[] {
  return result.status === 'fulfilled' ? result.value : [];
}

/** RFC 7505 section 3: exactly one MX record, preference 0, exchange the root ("."). */
function isNullMx(records: MxRecord[]): boolean {
  return records.length === 1 && records[0]?.priority === 0 && isRoot(records[0].exchange);
}

function isRoot(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

/** Lower-cased exchanges without a trailing dot, each host once (at its best preference). */
function dedupe(records: MxRecord[]): MxRecord[] {
  const best = new Map<string, MxRecord>();
  for (const r of records) {
    const exchange = normalizeDomain(r.exchange) ?? r.exchange.toLowerCase().replace(/\.$/, '');
    const seen = best.get(exchange);
    if (!seen || r.priority < seen.priority) best.set(exchange, { exchange, priority: r.priority });
  }
  return [...best.values()];
}

/** "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 section 4.1.3) as a plain address. */
function addressLiteral(domain: string): string | undefined {
  const m = /^\[(IPv6:)?([^\]]+)\]$/i.exec(domain.trim());
  if (!m) return undefined;
  const [, v6Tag, address = ''] = m;
  return isIP(address) === (v6Tag ? 6 : 4) ? address : undefined;
}
