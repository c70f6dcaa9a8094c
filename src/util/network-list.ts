// A list of client networks ("127.0.0.0/8", "::1/128", "192.0.2.7"), as [limits] trusted_networks
// names them. Matching goes through node's BlockList, which compares addresses as numbers, so
// "0:0:0:0:0:0:0:1" and "::1" are one address; IPv4-mapped IPv6 clients ("::ffff:127.0.0.1", as a
// dual-stack socket shows them) are matched as the IPv4 address they are.

import { BlockList, isIP } from 'node:net';

export class NetworkList {
  private readonly list = new BlockList();
  readonly size: number;
  /** The last address asked about and its answer: the list never changes once made. */
  private lastIp: string | undefined;
  private lastAnswer = false;

  /** Throws an Error naming the first entry that is not an address or a network. */
  constructor(networks: readonly string[]) {
    for (const network of networks) {
      const parsed = parseNetwork(network);
      if (!parsed) throw new Error(`"${network}" is not an IP address or network (e.g. "192.0.2.0/24", "2001:db8::/32")`);
      this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.size = networks.length;
  }

  contains(ip: string): boolean {
    if (this.size === 0) return false;
    // A session asks about its one client several times per message (rates, sender checks,
    // greylisting), and parsing an address into the BlockList is the dear part.
    if (ip === this.lastIp) return this.lastAnswer;
    const answer = this.check(ip);
    this.lastIp = ip;
    this.lastAnswer = answer;
    return answer;
  }

  private check(ip: string): boolean {
    const family = isIP(ip);
    if (family === 0) return false;
    try {
      return this.list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
    } catch {
      return false; // a scoped address ("fe80::1%eth0") is no network's member here
    }
  }
}

interface Network {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** Addresses compared as addresses: "2001:db8::1" and "2001:0db8:0:0::1" are one. */
export function sameAddress(a: string, b: string): boolean {
  if (isIP(a) !== isIP(b) || isIP(a) === 0) return false;
  return canonicalAddress(a) === canonicalAddress(b);
}

function canonicalAddress(ip: string): string {
  if (isIP(ip) === 4) return ip;
  return new URL(`http://[${ip}]/`).hostname;
}

/** "a.b.c.d/n", "v6/n", or a single address (a /32 or /128); undefined when it is none of those. */
export function parseNetwork(text: string): Network | undefined {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > max) return undefined;
  return { address, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}
