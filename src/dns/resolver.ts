// Postern's DNS client for outbound mail: MX, A, AAAA and TXT over node:dns (c-ares), asking the
// resolvers named in [relay] dns_servers, or the system's. Every failure becomes a DnsError whose
// code says whether it is an answer (NXDOMAIN, NODATA) or a reason to try later (TEMPFAIL).

import { Resolver } from 'node:dns/promises';
import { isIPv4 } from 'node:net';
import { AnswerCache, type TimedAnswer } from './answer-cache.js';
import { DnsError, describeDnsErrorCode, dnsErrorCode } from './dns-error.js';

export { DnsError, type DnsErrorCode } from './dns-error.js';

export interface DnsOptions {
  /** "127.0.0.1:5353", "[::1]:5353", "192.0.2.53"; empty or undefined: the system's resolvers. */
  servers?: string[];
  /** Milliseconds to wait for each try of a question (c-ares tries twice per server). */
  timeoutMs?: number;
  /** Reuse answers for at most this many seconds (A/AAAA: less when their TTL is shorter); 0 or undefined: ask every time. */
  maxCacheSeconds?: number;
}

export interface MxRecord {
  exchange: string;
  priority: number;
}

export interface DnsClient {
  mx(domain: string): Promise<MxRecord[]>;
  a(host: string): Promise<string[]>;
  aaaa(host: string): Promise<string[]>;
  /** Each record as its list of character-strings (RFC 1035 section 3.3.14), not joined. */
  txt(name: string): Promise<string[][]>;
  /** The names of an address's PTR records (RFC 1035 section 3.5): reverse DNS. */
  ptr(address: string): Promise<string[]>;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** Two tries per server: one lost UDP datagram should not defer a delivery. */
const TRIES = 2;

export function createDnsClient(opts: DnsOptions = {}): DnsClient {
  const resolver = new Resolver({ timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, tries: TRIES });
  if (opts.servers && opts.servers.length > 0) resolver.setServers(opts.servers);
  const cache = opts.maxCacheSeconds ? new AnswerCache(opts.maxCacheSeconds) : undefined;
  return new NodeDnsClient(resolver, cache);
}

class NodeDnsClient implements DnsClient {
  constructor(
    private readonly resolver: Resolver,
    private readonly cache: AnswerCache | undefined,
  ) {}

  mx(domain: string): Promise<MxRecord[]> {
    return this.ask('MX', domain, async () => ({
      value: (await this.resolver.resolveMx(domain)).map((r) => ({ exchange: r.exchange, priority: r.priority })),
    }));
  }

  a(host: string): Promise<string[]> {
    return this.ask('A', host, async () => withTtl(await this.resolver.resolve4(host, { ttl: true })));
  }

  aaaa(host: string): Promise<string[]> {
    return this.ask('AAAA', host, async () => withTtl(await this.resolver.resolve6(host, { ttl: true })));
  }

  txt(name: string): Promise<string[][]> {
    return this.ask('TXT', name, async () => ({ value: await this.resolver.resolveTxt(name) }));
  }

  ptr(address: string): Promise<string[]> {
    // resolvePtr, not reverse(): c-ares answers reverse() from /etc/hosts first, and a probe
    // wants what the world sees in DNS.
    return this.ask('PTR', address, async () => ({ value: await this.resolver.resolvePtr(reverseName(address)) }));
  }

  private ask<T>(type: string, name: string, lookup: () => Promise<TimedAnswer<T>>): Promise<T> {
    const question = `${type} ${name}`;
    const guarded = async (): Promise<TimedAnswer<T>> => {
      try {
        return await lookup();
      } catch (err) {
        const nodeCode = (err as NodeJS.ErrnoException).code;
        const code = dnsErrorCode(nodeCode);
        throw new DnsError(code, question, describeDnsErrorCode(code, nodeCode), { cause: err });
      }
    };
    if (!this.cache) return guarded().then((answer) => answer.value);
    return this.cache.get(`${type} ${name.toLowerCase()}`, guarded);
  }
}

/** The PTR owner name of an address (RFC 1035 section 3.5, RFC 3596 section 2.5). */
export function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  // Expand "::" to the full eight groups, then one label per hex digit, last first.
  const [head = '', tail = ''] = address.split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = address.includes('::') ? groups(tail) : [];
  const all = [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${all.map((g) => g.padStart(4, '0')).join('').split('').reverse().join('.')}.ip6.arpa`;
}

function withTtl(records: { address: string; ttl: number }[]): TimedAnswer<string[]> {
  return { value: records.map((r) => r.address), ttlSeconds: Math.min(...records.map((r) => r.ttl)) };
}
