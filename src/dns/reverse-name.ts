// The reverse form of an address, as PTR records (RFC 1035 section 3.5, RFC 3596 section 2.5)
// and DNS blocklists (RFC 5782 section 2.1) are keyed by: IPv4 octets, IPv6 nibbles, in reverse.

import { isIP } from 'node:net';

/** "192.0.2.1" -> "1.2.0.192"; "2001:db8::1" -> "1.0.0.0.…8.b.d.0.1.0.0.2"; undefined for a non-address. */
export function reversedLabels(ip: string): string | undefined {
  const family = isIP(ip);
  if (family === 4) return ip.split('.').reverse().join('.');
  if (family !== 6) return undefined;
  const bytes = ipv6Bytes(ip);
  const nibbles: string[] = [];
  for (const byte of bytes) nibbles.push((byte >> 4).toString(16), (byte & 0xf).toString(16));
  return nibbles.reverse().join('.');
}

/** The PTR owner name of `ip`: under in-addr.arpa or ip6.arpa. */
export function reverseName(ip: string): string | undefined {
  const labels = reversedLabels(ip);
  if (labels === undefined) return undefined;
  return `${labels}.${isIP(ip) === 4 ? 'in-addr.arpa' : 'ip6.arpa'}`;
}

function ipv6Bytes(ip: string): number[] {
  const [head = '', tail] = ip.split('::');
  const groups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}
