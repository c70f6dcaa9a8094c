// Where mail for a domain goes: a per-domain transport from [relay] transports, else the smart
// host, else the domain's MX hosts (RFC 5321 section 5.1, via MxResolver), without ourselves and
// the hosts we are preferred to. The answer is a list of hosts to try in order, or a verdict for
// every recipient of the domain.

import { isIP } from 'node:net';
import type { Config } from '../../config/schema.js';
import { DnsError, type DnsClient } from '../../dns/resolver.js';
import { MxResolver } from '../../dns/mx-resolver.js';
import { normalizeDomain } from '../../mail/address.js';

export interface NextHost {
  /** The host's name (or the literal address): what its certificate must name. */
  readonly name: string;
  readonly addresses: readonly string[];
  readonly port: number;
}

export type Via = 'mx' | 'transport' | 'smarthost';

export type Route =
  | {
      readonly kind: 'hosts';
      readonly via: Via;
      /** What concurrency limits and connection reuse count by: the domain, transport or smart host. */
      readonly destination: string;
      readonly hosts: readonly NextHost[];
    }
  /** Permanent: every recipient of the domain bounces. */
  | { readonly kind: 'failed'; readonly status: string; readonly reason: string }
  /** Temporary: try again later. */
  | { readonly kind: 'deferred'; readonly reason: string };

/** A next hop as written in the config: "[host]:port" is that host, "host:port" its MX hosts. */
export interface NextHopSpec {
  readonly host: string;
  readonly port: number | undefined;
  /** Brackets: no MX lookup (the Postfix convention). */
  readonly literal: boolean;
}

/** Parses "[host]:port", "host:port", "[host]", "host" (and "smtp:" in front, for transports). */
export function parseNextHop(text: string): NextHopSpec {
  const m = /^(?:smtp:)?(?:\[([^\]\s]+)\]|([^\s:\[\]]+))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new Error(`bad next hop "${text}": expected "[host]:port" or "host:port"`);
  return { host: m[1] ?? m[2] ?? '', port: m[3] === undefined ? undefined : Number(m[3]), literal: m[1] !== undefined };
}

type RelayConfig = Pick<Config['relay'], 'smarthost' | 'smarthost_tls' | 'transports' | 'mx_port'>;

export class Router {
  private readonly mx: MxResolver;
  private readonly transports: ReadonlyMap<string, NextHopSpec>;
  private readonly smarthost: NextHopSpec | undefined;
  /** Our own name (config hostname), as MX names are compared. */
  private readonly self: string;

  constructor(
    private readonly relay: RelayConfig,
    private readonly dns: DnsClient,
    hostname: string,
  ) {
    this.mx = new MxResolver(dns);
    this.self = hostKey(hostname);
    this.transports = new Map(
      Object.entries(relay.transports).map(([domain, spec]) => [normalizeDomain(domain) ?? domain.toLowerCase(), parseNextHop(spec)]),
    );
    // The smart host is always that host itself: an MX lookup of a relay's name would be surprising.
    this.smarthost = relay.smarthost === '' ? undefined : { ...parseNextHop(relay.smarthost), literal: true };
  }

  async route(domain: string): Promise<Route> {
    const d = normalizeDomain(domain) ?? domain.toLowerCase();
    const transport = this.transports.get(d);
    if (transport) return this.viaSpec(transport, 'transport', this.relay.mx_port);
    if (this.smarthost) return this.viaSpec(this.smarthost, 'smarthost', this.relay.smarthost_tls === 'implicit' ? 465 : 25);
    return this.viaMx(d, d, this.relay.mx_port, 'mx');
  }

  private viaSpec(spec: NextHopSpec, via: Via, defaultPort: number): Promise<Route> {
    const port = spec.port ?? defaultPort;
    if (!spec.literal) return this.viaMx(spec.host, `${via}:${spec.host}:${port}`, port, via);
    return this.literal(spec.host, port, via);
  }

  private async literal(host: string, port: number, via: Via): Promise<Route> {
    const destination = `${via}:[${host}]:${port}`;
    if (isIP(host) !== 0) return { kind: 'hosts', via, destination, hosts: [{ name: host, addresses: [host], port }] };
    const [v4, v6] = await Promise.all([this.addresses(() => this.dns.a(host)), this.addresses(() => this.dns.aaaa(host))]);
    const addresses = [...(Array.isArray(v4) ? v4 : []), ...(Array.isArray(v6) ? v6 : [])];
    if (addresses.length === 0) {
      // A configured relay without an address is our misconfiguration, not the recipient's fault.
      const why = v4 === 'tempfail' || v6 === 'tempfail' ? 'cannot be looked up in DNS right now' : 'has no address in DNS';
      return { kind: 'deferred', reason: `the ${via} host ${host} ${why}` };
    }
    return { kind: 'hosts', via, destination, hosts: [{ name: host, addresses, port }] };
  }

  /**
   * RFC 5321 5.1: if our own name is in the MX list, that record and every one with an equal or
   * higher preference are discarded; only the hosts more preferred than us are left to try.
   */
  private withoutSelf<H extends { readonly name: string; readonly preference: number }>(hosts: readonly H[]): readonly H[] {
    const ours = hosts.filter((h) => hostKey(h.name) === this.self).map((h) => h.preference);
    if (ours.length === 0) return hosts;
    const limit = Math.min(...ours);
    return hosts.filter((h) => h.preference < limit);
  }

  private async addresses(lookup: () => Promise<string[]>): Promise<string[] | 'tempfail'> {
    try {
      return await lookup();
    } catch (err) {
      // Only an answer (NXDOMAIN, NODATA) means "no address"; anything else may pass.
      return err instanceof DnsError && err.permanent ? [] : 'tempfail';
    }
  }

  private async viaMx(domain: string, destination: string, port: number, via: Via): Promise<Route> {
    let hops;
    try {
      hops = await this.mx.resolve(domain);
    } catch (err) {
      return { kind: 'deferred', reason: `DNS lookup of ${domain} failed temporarily (${err instanceof Error ? err.message : String(err)})` };
    }
    switch (hops.kind) {
      case 'null-mx':
        // RFC 7505 section 3: a null MX says the domain accepts no mail; bounce at once.
        return { kind: 'failed', status: '5.1.10', reason: `Recipient address has null MX: ${domain} accepts no mail` };
      case 'no-such-domain':
        return { kind: 'failed', status: '5.1.2', reason: `The domain ${domain} does not exist` };
      case 'hosts': {
        const others = this.withoutSelf(hops.hosts);
        if (others.length === 0) {
          // RFC 5321 5.1: we are the best MX left, so sending would only come back here. Bounce
          // at once, as Postfix does: the DNS or our hostname is wrong, and retrying will not help.
          return { kind: 'failed', status: '5.4.6', reason: `mail for ${domain} loops back to myself` };
        }
        const hosts = others
          .filter((h) => h.addresses.length > 0)
          .map((h) => ({ name: h.name, addresses: h.addresses, port }));
        if (hosts.length === 0) return { kind: 'deferred', reason: `no mail server of ${domain} has an address in DNS` };
        return { kind: 'hosts', via, destination, hosts };
      }
    }
  }
}

function hostKey(name: string): string {
  return normalizeDomain(name) ?? name.toLowerCase();
}
