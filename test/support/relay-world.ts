// What the relay end-to-end tests share: a Postern instance whose local domain is postern.test,
// configured to resolve through the test DNS server, with tiny retry intervals; accounts that
// submit with AUTH; and a way to verify DKIM signatures against the test DNS.

import { Resolver } from 'node:dns/promises';
import { randomUUID } from 'node:crypto';
import { dkimVerify } from 'mailauth';
import nodemailer from 'nodemailer';
import type { TestDnsServer } from './dns-server.js';
import { PosternInstance, type InstanceOptions } from './postern-process.js';

export const LOCAL_DOMAIN = 'postern.test';
export const PASSWORD = 'correct horse battery staple';

/** Retries within a second or two: tests never wait for production backoff. */
export const FAST_QUEUE = { retry_first: '1s', retry_max: '2s', delay_warning: '1h', give_up: '1h' } as const;

export interface RelayInstanceOptions {
  readonly dns: TestDnsServer;
  /** [relay] keys beyond dns_servers. */
  readonly relay?: Readonly<Record<string, unknown>>;
  /** [queue] keys overriding FAST_QUEUE. */
  readonly queue?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string>>;
  /** Local accounts (at LOCAL_DOMAIN) to create. */
  readonly users: readonly string[];
  readonly extra?: Partial<InstanceOptions>;
}

/** A configured instance with postern.test and its users; not started yet. */
export async function relayInstance(opts: RelayInstanceOptions): Promise<PosternInstance> {
  const instance = new PosternInstance({
    hostname: `mx.${LOCAL_DOMAIN}`,
    postmaster: `postmaster@${LOCAL_DOMAIN}`,
    relay: { dns_servers: [opts.dns.address], ...opts.relay },
    queue: { ...FAST_QUEUE, ...opts.queue },
    env: opts.env,
    ...opts.extra,
  });
  await instance.cliOk(['domain', 'add', LOCAL_DOMAIN]);
  for (const user of opts.users) await instance.addUser(user, PASSWORD);
  return instance;
}

export interface Submission {
  readonly from: string;
  readonly to: readonly string[];
  /** Put in the Subject; found again in the delivered copy or in a bounce. */
  readonly marker: string;
  readonly body?: string;
}

/** A marker unique to this run, e.g. "delivered-3f2a...". */
export function marker(label: string): string {
  return `${label}-${randomUUID()}`;
}

/** Submits one message on the submission port: STARTTLS, AUTH PLAIN as `from`, then MAIL. */
export async function submit(port: number, message: Submission): Promise<void> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: message.from, pass: PASSWORD },
  });
  try {
    await transport.sendMail({
      from: message.from,
      to: [...message.to],
      subject: message.marker,
      text: message.body ?? `This is ${message.marker}.\n`,
    });
  } finally {
    transport.close();
  }
}

export interface DkimVerdict {
  readonly signingDomain?: string;
  readonly selector?: string;
  readonly algo?: string;
  readonly status: { readonly result: string; readonly comment?: string };
}

/** Verifies the DKIM signatures of a received message, looking keys up in the test DNS. */
export async function verifyDkim(message: string | Buffer, dns: TestDnsServer): Promise<DkimVerdict[]> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dns.address]);
  const result = await dkimVerify(typeof message === 'string' ? Buffer.from(message, 'latin1') : message, {
    resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]>,
  });
  return result.results as unknown as DkimVerdict[];
}

/** The name and strings of the TXT record in `postern dkim generate|show` output. */
export function parseDkimRecordLine(output: string): { name: string; strings: string[] } {
  const line = output.split('\n').find((l) => / IN TXT /.test(l));
  if (!line) throw new Error(`no TXT record in: ${output}`);
  const name = line.slice(0, line.indexOf('. IN TXT '));
  const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
  return { name, strings };
}
