// Postern's DNS client for outbound mail: MX, A, AAAA and TXT over node:dns (c-ares), asking the
// resolvers named in [relay] dns_servers, or the system's; `postern doctor` also asks for PTR,
// SRV and CNAME records to compare what is published with what the server does. Every failure becomes a DnsError whose
// code says whether it is an answer (NXDOMAIN, NODATA) or a reason to try later (TEMPFAIL).

import { Resolver } from 'node:dns/promises';
import { AnswerCache, type TimedAnswer } from './answer-cache.js';
import { DnsError, describeDnsErrorCode, dnsErrorCode } from './dns-error.js';

import { dnsLookups } from '../metrics/metrics.js';
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
  /** Host names of a reverse name ("4.3.2.1.in-addr.arpa"), RFC 1035 section 3.5. */
  ptr(name: string): Promise<string[]>;
  srv(name: string): Promise<SrvRecord[]>;
  /** The target of a CNAME at `name` itself (not followed further). */
  cname(name: string): Promise<string[]>;
  /** Ends every question in flight now, as a TEMPFAIL (ECANCELLED): the server is stopping. */
  cancel?(): void;
}

export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  name: string;
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

  ptr(name: string): Promise<string[]> {
    return this.ask('PTR', name, async () => ({ value: await this.resolver.resolvePtr(name) }));
  }

  srv(name: string): Promise<SrvRecord[]> {
    return this.ask('SRV', name, async () => ({
      value: (await this.resolver.resolveSrv(name)).map(({ priority, weight, port, name: target }) => ({ priority, weight, port, name: target })),
    }));
  }

  cname(name: string): Promise<string[]> {
    return this.ask('CNAME', name, async () => ({ value: await this.resolver.resolveCname(name) }));
  }

  cancel(): void {
    this.resolver.cancel();
  }

  private ask<T>(type: string, name: string, lookup: () => Promise<TimedAnswer<T>>): Promise<T> {
    const question = `${type} ${name}`;
    const guarded = async (): Promise<TimedAnswer<T>> => {
      try {
        const answer = await lookup();
        dnsLookups.inc({ type, result: 'ok' });
        return answer;
      } catch (err) {
        const nodeCode = (err as NodeJS.ErrnoException).code;
        const code = dnsErrorCode(nodeCode);
        dnsLookups.inc({ type, result: code.toLowerCase() });
        throw new DnsError(code, question, describeDnsErrorCode(code, nodeCode), { cause: err });
      }
    };
    if (!this.cache) return guarded().then((answer) => answer.value);
    return this.cache.get(`${type} ${name.toLowerCase()}`, guarded);
  }
}

function withTtl(records: { address: string; ttl: number }[]): TimedAnswer<string[]> {
  return { value: records.map((r) => r.address), ttlSeconds: Math.min(...records.map((r) => r.ttl)) };
}
