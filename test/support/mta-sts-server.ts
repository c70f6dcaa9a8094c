// An HTTPS server on 127.0.0.1 (ephemeral port) that hosts MTA-STS policy files for tests
// (RFC 8461 section 3.2), with its own test CA: the certificate is issued by `ca` for
// mta-sts.<domain> of each domain named at start, so a client that trusts `ca` validates it,
// and a domain not named gets a name mismatch. Each domain's answer (body, status, media type,
// or no answer at all) is set and changed by the test; fetches are counted.

import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { generate } from 'selfsigned';

export interface PolicyAnswer {
  readonly body: string;
  readonly status?: number;
  /** Default "text/plain; charset=utf-8". */
  readonly contentType?: string;
  /** Accept the request and never answer (a fetch timeout). */
  readonly hang?: boolean;
}

export interface PolicyFields {
  readonly mode: 'enforce' | 'testing' | 'none';
  readonly mx: readonly string[];
  readonly maxAge: number;
}

/** The text of a policy file, CRLF line endings as in RFC 8461 section 3.2's example. */
export function policyText(fields: PolicyFields): string {
  const lines = ['version: STSv1', `mode: ${fields.mode}`, ...fields.mx.map((mx) => `mx: ${mx}`), `max_age: ${fields.maxAge}`];
  return lines.map((l) => `${l}\r\n`).join('');
}

export class TestMtaStsServer {
  private readonly answers = new Map<string, PolicyAnswer>();
  private readonly fetchCounts = new Map<string, number>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    /** PEM of the CA that issued the server's certificate: what a client must trust. */
    readonly ca: string,
  ) {}

  /** Starts with a certificate for mta-sts.<domain> of each of `domains`. */
  static async start(domains: readonly string[]): Promise<TestMtaStsServer> {
    const notBeforeDate = new Date(Date.now() - 60_000);
    const notAfterDate = new Date(notBeforeDate.getTime() + 24 * 3600_000);
    const authority = await generate([{ name: 'commonName', value: 'Postern Test CA' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      ],
    });
    const names = domains.map((d) => `mta-sts.${d}`);
    const leaf = await generate([{ name: 'commonName', value: names[0] ?? 'mta-sts.invalid' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      ca: { key: authority.private, cert: authority.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: names.map((value) => ({ type: 2 as const, value })) },
      ],
    });
    const server = createServer({ cert: leaf.cert, key: leaf.private });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const instance = new TestMtaStsServer(server, address.port, authority.cert);
    instance.serve();
    return instance;
  }

  /** What https://mta-sts.<domain>/.well-known/mta-sts.txt answers; undefined: 404. */
  setPolicy(domain: string, answer: PolicyAnswer | string | undefined): void {
    const key = domain.toLowerCase();
    if (answer === undefined) this.answers.delete(key);
    else this.answers.set(key, typeof answer === 'string' ? { body: answer } : answer);
  }

  /** Requests for the policy of `domain` so far. */
  fetches(domain: string): number {
    return this.fetchCounts.get(domain.toLowerCase()) ?? 0;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(): void {
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server.on('request', (req, res) => {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
      const domain = host.startsWith('mta-sts.') ? host.slice('mta-sts.'.length) : host;
      if (req.url !== '/.well-known/mta-sts.txt') {
        res.writeHead(404).end();
        return;
      }
      this.fetchCounts.set(domain, this.fetches(domain) + 1);
      const answer = this.answers.get(domain);
      if (!answer) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no policy\n');
        return;
      }
      if (answer.hang) return;
      res.writeHead(answer.status ?? 200, { 'content-type': answer.contentType ?? 'text/plain; charset=utf-8' });
      res.end(answer.body);
    });
  }
}
