// A small authoritative DNS server for tests (RFC 1035 wire format), on UDP and TCP at
// 127.0.0.1 on one ephemeral port. The zone lives in memory and the test changes it while the
// server runs: set() replaces a name's records, failWith() makes a name answer SERVFAIL or
// REFUSED, or not answer at all (a timeout on the client side).
//
// Names are compared case-insensitively (RFC 1035 section 2.3.3) and without a trailing dot.
// A name in the zone with no record of the asked type answers NOERROR with an empty answer
// (NODATA, RFC 2308 section 2.2); a name not in the zone answers NXDOMAIN. IDN names must be
// set in their A-label form ("xn--...").

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv4, isIPv6, type Server, type Socket } from 'node:net';

export type DnsRecord =
  | { readonly type: 'A'; readonly address: string; readonly ttl?: number }
  | { readonly type: 'AAAA'; readonly address: string; readonly ttl?: number }
  | { readonly type: 'MX'; readonly preference: number; readonly exchange: string; readonly ttl?: number }
  | { readonly type: 'TXT'; readonly strings: readonly string[]; readonly ttl?: number }
  | { readonly type: 'CNAME'; readonly target: string; readonly ttl?: number }
  /** At a reverse name: "4.3.2.1.in-addr.arpa" or the nibbles under "ip6.arpa" (RFC 1035 section 3.5, RFC 3596). */
  | { readonly type: 'PTR'; readonly target: string; readonly ttl?: number }
  | {
      readonly type: 'SRV';
      readonly priority: number;
      readonly weight: number;
      readonly port: number;
      /** "." says the service is not offered at all (RFC 2782). */
      readonly target: string;
      readonly ttl?: number;
    };

export type DnsRecordType = DnsRecord['type'];

/** How a name misbehaves: SERVFAIL, REFUSED, or silence (the client times out). */
export type DnsFailure = 'servfail' | 'refused' | 'drop';

export interface DnsQuestion {
  readonly name: string;
  readonly type: DnsRecordType | 'OTHER';
  readonly transport: 'udp' | 'tcp';
}

const TYPE_CODES: Readonly<Record<DnsRecordType, number>> = { A: 1, CNAME: 5, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33 };
const TYPE_OPT = 41;
const CLASS_IN = 1;
const RCODE = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, notImp: 4, refused: 5 } as const;
/** RFC 1035 section 4.2.1: a UDP answer without EDNS(0) holds at most 512 octets. */
const CLASSIC_UDP_LIMIT = 512;
/** Follow at most this many CNAMEs inside the zone (a loop must end). */
const MAX_CNAME_CHAIN = 8;
const DEFAULT_TTL = 60;

export function dnsName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export class TestDnsServer {
  /** Every question received, in order (UDP and TCP). */
  readonly questions: DnsQuestion[] = [];
  private readonly zone = new Map<string, DnsRecord[]>();
  private readonly failures = new Map<string, DnsFailure>();
  private readonly tcpSockets = new Set<Socket>();

  private constructor(
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
    readonly port: number,
  ) {}

  /** Starts UDP and TCP on the same ephemeral port of 127.0.0.1. */
  static async start(): Promise<TestDnsServer> {
    // The kernel picks the UDP port; the TCP listener then takes the same number. Another
    // process may hold that TCP port, so try a few times.
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, '127.0.0.1', () => resolve());
      });
      const port = udp.address().port;
      const tcp = createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, '127.0.0.1', () => resolve());
        });
      } catch (err) {
        udp.close();
        if (attempt >= 10) throw err;
        continue;
      }
      const server = new TestDnsServer(udp, tcp, port);
      server.serve();
      return server;
    }
  }

  /** "127.0.0.1:PORT", for Resolver.setServers() and [relay] dns_servers. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Replaces all records of `name`; an empty list makes the name exist with no data. */
  set(name: string, records: readonly DnsRecord[]): void {
    this.zone.set(dnsName(name), [...records]);
  }

  /** Adds one record to `name`, creating the name if needed. */
  add(name: string, record: DnsRecord): void {
    const key = dnsName(name);
    this.zone.set(key, [...(this.zone.get(key) ?? []), record]);
  }

  /** Removes `name` from the zone: it answers NXDOMAIN from now on. */
  remove(name: string): void {
    this.zone.delete(dnsName(name));
  }

  /**
   * Makes questions about `name` (of one type, or of every type) fail this way; undefined
   * restores normal answers.
   */
  failWith(name: string, failure: DnsFailure | undefined, type?: DnsRecordType): void {
    const key = failureKey(dnsName(name), type);
    if (failure === undefined) this.failures.delete(key);
    else this.failures.set(key, failure);
  }

  /** How many questions arrived, optionally only those about one name (and type). */
  requestCount(name?: string, type?: DnsRecordType): number {
    return this.questions.filter(
      (q) => (name === undefined || q.name === dnsName(name)) && (type === undefined || q.type === type),
    ).length;
  }

  async close(): Promise<void> {
    for (const socket of this.tcpSockets) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]);
  }

  private serve(): void {
    this.udp.on('message', (packet: Buffer, peer: RemoteInfo) => {
      const answer = this.answer(packet, 'udp');
      if (answer) this.udp.send(answer, peer.port, peer.address);
    });
    this.tcp.on('connection', (socket) => this.serveTcp(socket));
  }

  /** RFC 1035 section 4.2.2: each message is preceded by a two-octet length. */
  private serveTcp(socket: Socket): void {
    this.tcpSockets.add(socket);
    socket.on('close', () => this.tcpSockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const packet = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        const answer = this.answer(packet, 'tcp');
        if (!answer) continue;
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(answer.length);
        socket.write(Buffer.concat([prefix, answer]));
      }
    });
  }

  /** The response to one query message, or undefined to stay silent. */
  private answer(packet: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    let query: Query;
    try {
      query = parseQuery(packet);
    } catch {
      if (packet.length < 2) return undefined;
      return encodeResponse({ id: packet.readUInt16BE(0), flags: 0, rcode: RCODE.formErr });
    }
    const type = typeName(query.qtype);
    this.questions.push({ name: dnsName(query.qname), type, transport });
    const base = { id: query.id, flags: query.flags, question: query, edns: query.udpLimit !== undefined };

    const failure =
      this.failures.get(failureKey(dnsName(query.qname), type)) ?? this.failures.get(failureKey(dnsName(query.qname), undefined));
    if (failure === 'drop') return undefined;
    if (failure === 'servfail') return encodeResponse({ ...base, rcode: RCODE.servFail });
    if (failure === 'refused') return encodeResponse({ ...base, rcode: RCODE.refused });
    if (query.qclass !== CLASS_IN) return encodeResponse({ ...base, rcode: RCODE.notImp });

    const { rcode, answers } = this.lookup(query.qname, type);
    const full = encodeResponse({ ...base, rcode, answers });
    const limit = Math.max(CLASSIC_UDP_LIMIT, query.udpLimit ?? CLASSIC_UDP_LIMIT);
    if (transport === 'udp' && full.length > limit) {
      // RFC 1035 section 4.2.1 / RFC 7766: too big for UDP, so set TC and let the client
      // repeat the question over TCP.
      return encodeResponse({ ...base, rcode, truncated: true });
    }
    return full;
  }

  /** Answers `type` for `name`, following CNAMEs inside the zone (RFC 1034 section 4.3.2). */
  private lookup(qname: string, type: DnsRecordType | 'OTHER'): { rcode: number; answers: Answer[] } {
    const answers: Answer[] = [];
    let owner = qname;
    for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
      const records = this.zone.get(dnsName(owner));
      // RFC 6604: a CNAME chain ending at a missing name is NXDOMAIN, the chain included.
      if (!records) return { rcode: RCODE.nxDomain, answers };
      const cname = records.find((r) => r.type === 'CNAME');
      if (cname?.type === 'CNAME' && type !== 'CNAME') {
        answers.push({ owner, record: cname });
        owner = cname.target;
        continue;
      }
      for (const record of records) if (record.type === type) answers.push({ owner, record });
      return { rcode: RCODE.noError, answers };
    }
    return { rcode: RCODE.servFail, answers: [] };
  }
}

interface Query {
  readonly id: number;
  readonly flags: number;
  readonly qname: string;
  readonly qtype: number;
  readonly qclass: number;
  /** The requester's UDP payload size from its EDNS(0) OPT record (RFC 6891 section 6.2.3). */
  readonly udpLimit: number | undefined;
}

interface Answer {
  readonly owner: string;
  readonly record: DnsRecord;
}

function failureKey(name: string, type: DnsRecordType | 'OTHER' | undefined): string {
  return type === undefined ? name : `${name} ${type}`;
}

function typeName(code: number): DnsRecordType | 'OTHER' {
  for (const [name, value] of Object.entries(TYPE_CODES)) if (value === code) return name as DnsRecordType;
  return 'OTHER';
}

function parseQuery(packet: Buffer): Query {
  if (packet.length < 12) throw new Error('short header');
  const id = packet.readUInt16BE(0);
  const flags = packet.readUInt16BE(2);
  if (flags & 0x8000) throw new Error('a response, not a query');
  const qdcount = packet.readUInt16BE(4);
  const arcount = packet.readUInt16BE(10);
  if (qdcount !== 1) throw new Error('exactly one question expected');
  const { name: qname, end } = readName(packet, 12);
  const qtype = packet.readUInt16BE(end);
  const qclass = packet.readUInt16BE(end + 2);
  let offset = end + 4;
  let udpLimit: number | undefined;
  for (let i = 0; i < arcount; i++) {
    const rr = readName(packet, offset);
    const rrType = packet.readUInt16BE(rr.end);
    const rrClass = packet.readUInt16BE(rr.end + 2);
    const rdLength = packet.readUInt16BE(rr.end + 8);
    if (rrType === TYPE_OPT) udpLimit = rrClass;
    offset = rr.end + 10 + rdLength;
  }
  return { id, flags, qname, qtype, qclass, udpLimit };
}

function readName(packet: Buffer, start: number): { name: string; end: number } {
  const labels: string[] = [];
  let offset = start;
  let end: number | undefined;
  for (let jumps = 0; jumps < 64; jumps++) {
    const length = packet.readUInt8(offset);
    if (length === 0) return { name: labels.join('.'), end: end ?? offset + 1 };
    if ((length & 0xc0) === 0xc0) {
      // RFC 1035 section 4.1.4 compression pointer.
      end ??= offset + 2;
      offset = packet.readUInt16BE(offset) & 0x3fff;
      continue;
    }
    if (offset + 1 + length > packet.length) throw new Error('label past the end');
    labels.push(packet.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  throw new Error('too many labels or pointers');
}

interface Response {
  readonly id: number;
  readonly flags: number;
  readonly rcode: number;
  readonly question?: Query;
  readonly answers?: readonly Answer[];
  readonly truncated?: boolean;
  readonly edns?: boolean;
}

function encodeResponse(r: Response): Buffer {
  const answers = r.answers ?? [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(r.id, 0);
  // QR, the query's opcode and RD, AA (we are the authority), TC when truncated.
  const flags = 0x8000 | (r.flags & 0x7900) | 0x0400 | (r.truncated ? 0x0200 : 0) | (r.rcode & 0x0f);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(r.question ? 1 : 0, 4);
  header.writeUInt16BE(r.truncated ? 0 : answers.length, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(r.edns ? 1 : 0, 10);
  const parts: Buffer[] = [header];
  if (r.question) parts.push(encodeName(r.question.qname), u16(r.question.qtype), u16(r.question.qclass));
  if (!r.truncated) for (const answer of answers) parts.push(encodeAnswer(answer));
  // RFC 6891 section 7: a responder that understood OPT includes one in its response.
  if (r.edns) parts.push(Buffer.from([0]), u16(TYPE_OPT), u16(1232), Buffer.alloc(4), u16(0));
  return Buffer.concat(parts);
}

function encodeAnswer({ owner, record }: Answer): Buffer {
  const rdata = encodeRdata(record);
  const ttl = Buffer.alloc(4);
  ttl.writeUInt32BE(record.ttl ?? DEFAULT_TTL);
  return Buffer.concat([encodeName(owner), u16(TYPE_CODES[record.type]), u16(CLASS_IN), ttl, u16(rdata.length), rdata]);
}

function encodeRdata(record: DnsRecord): Buffer {
  switch (record.type) {
    case 'A':
      if (!isIPv4(record.address)) throw new Error(`not an IPv4 address: ${record.address}`);
      return Buffer.from(record.address.split('.').map(Number));
    case 'AAAA':
      if (!isIPv6(record.address)) throw new Error(`not an IPv6 address: ${record.address}`);
      return ipv6Bytes(record.address);
    case 'MX':
      return Buffer.concat([u16(record.preference), encodeName(record.exchange)]);
    case 'TXT':
      // RFC 1035 section 3.3.14: one or more <character-string>s of at most 255 octets each.
      return Buffer.concat(
        record.strings.map((s) => {
          const bytes = Buffer.from(s, 'utf8');
          if (bytes.length > 255) throw new Error('a TXT string holds at most 255 octets');
          return Buffer.concat([Buffer.from([bytes.length]), bytes]);
        }),
      );
    case 'CNAME':
    case 'PTR':
      return encodeName(record.target);
    case 'SRV':
      // RFC 2782: priority, weight, port, then the target, which is never compressed.
      return Buffer.concat([u16(record.priority), u16(record.weight), u16(record.port), encodeName(record.target)]);
  }
}

/** Uncompressed wire form; "" and "." are the root (the null MX target, RFC 7505; SRV's "not offered"). */
function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const labels = trimmed === '' ? [] : trimmed.split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`bad label in ${name}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** 16 octets of a valid IPv6 address, "::" and an embedded IPv4 tail included. */
function ipv6Bytes(address: string): Buffer {
  const [head = '', tail] = address.split('::');
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').flatMap(groupWords));
  const left = words(head);
  const right = tail === undefined ? [] : words(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

function groupWords(group: string): number[] {
  if (!group.includes('.')) return [parseInt(group, 16)];
  const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
  return [(a << 8) | b, (c << 8) | d];
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}
