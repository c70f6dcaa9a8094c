// `postern dns --json`, published: its records are loaded as they are into the test DNS server
// and read back with Node's resolver, the way senders and mail programs read them. Then a mail
// program does what RFC 6186 says (SRV lookup, connect there, submit), the real server signs and
// relays the message to an MX, and the receiving side checks SPF, DKIM and DMARC (mailauth)
// against the published records alone: the key in the DKIM record is the key Postern signs with.

import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, test } from 'node:test';
import { authenticate } from 'mailauth';
import { parseStsRecord } from '../src/dns/mta-sts-policy.js';
import { TestDnsServer, type DnsRecord } from './support/dns-server.js';
import { freePort } from './support/postfix.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, relayInstance, submit } from './support/relay-world.js';
import { SmtpSink } from './support/smtp-sink.js';
import { waitFor } from './support/wait-for.js';

const ALICE = `alice@${LOCAL_DOMAIN}`;
const HOST = `mx.${LOCAL_DOMAIN}`;

/** A record as `postern dns --json` prints it. */
type PublishedRecord = DnsRecord & { readonly name: string; readonly comment: string };

describe('postern dns --json, published in DNS', () => {
  let dns: TestDnsServer;
  let resolver: Resolver;
  let sink: SmtpSink;
  let instance: PosternInstance;
  let server: PosternProcess;
  let published: PublishedRecord[];
  let notes: string;

  before(async () => {
    dns = await TestDnsServer.start();
    resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([dns.address]);
    // The receiving MX of another domain, on its own loopback address.
    sink = await SmtpSink.start({ name: 'mx.far.test' }, '127.0.0.2');
    dns.set('far.test', [{ type: 'MX', preference: 10, exchange: 'mx.far.test' }]);
    dns.set('mx.far.test', [{ type: 'A', address: '127.0.0.2' }]);

    // web: the http and https listeners are on, so `postern dns` publishes autoconfig, Autodiscover and MTA-STS.
    instance = await relayInstance({ dns, users: [ALICE], relay: { mx_port: sink.port }, extra: { submissionPort: await freePort(), web: true } });
    // RSA: its record is two TXT strings, which the resolver must hand back for joining.
    await instance.cliOk(['dkim', 'generate', LOCAL_DOMAIN, '--algorithm', 'rsa']);
    const run = await instance.cli(['dns', LOCAL_DOMAIN, '--json']);
    assert.equal(run.code, 0, run.stderr);
    published = JSON.parse(run.stdout) as PublishedRecord[];
    notes = run.stderr;
    for (const record of published) dns.add(record.name, record);
    // The test listens on loopback, so `postern dns` cannot know the server's address and says
    // which name must resolve to it; the operator's part is this one record.
    dns.add(HOST, { type: 'A', address: '127.0.0.1' });
    server = await instance.start();
  });

  after(async () => {
    await server?.stop().catch(() => server.kill());
    await instance?.dispose();
    await sink?.close();
    await dns?.close();
  });

  test('the notes name the address record the test had to add, and nothing else is missing', () => {
    assert.match(notes, new RegExp(`^postern: note: ${HOST.replace(/\./g, '\\.')} must have A \\(and AAAA\\) records`, 'm'));
    assert.doesNotMatch(notes, /DKIM/);
  });

  test('a resolver reads MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT as published', async () => {
    const mx = (await resolver.resolveMx(LOCAL_DOMAIN)).map(({ exchange, priority }) => ({ exchange, priority }));
    assert.deepEqual(mx, [{ exchange: HOST, priority: 10 }]);
    const joined = async (name: string): Promise<string[]> => (await resolver.resolveTxt(name)).map((strings) => strings.join(''));
    assert.deepEqual(await joined(LOCAL_DOMAIN), ['v=spf1 mx -all']);
    const [dkim, ...more] = await resolver.resolveTxt(`postern._domainkey.${LOCAL_DOMAIN}`);
    assert.equal(more.length, 0);
    assert.ok((dkim?.length ?? 0) >= 2 && dkim?.every((s) => s.length <= 255), 'several strings of at most 255 octets');
    assert.match(dkim?.join('') ?? '', /^v=DKIM1; k=rsa; p=MII[A-Za-z0-9+/=]+$/);
    assert.deepEqual(await joined(`_dmarc.${LOCAL_DOMAIN}`), [`v=DMARC1; p=none; rua=mailto:postmaster@${LOCAL_DOMAIN}`]);
    assert.deepEqual(await joined(`_smtp._tls.${LOCAL_DOMAIN}`), [`v=TLSRPTv1; rua=mailto:postmaster@${LOCAL_DOMAIN}`]);
    // The relay's own MTA-STS code reads the id as any sender would (RFC 8461 section 3.1).
    const id = parseStsRecord(await resolver.resolveTxt(`_mta-sts.${LOCAL_DOMAIN}`));
    assert.match(id ?? '', /^[A-Za-z0-9]{1,32}$/);
  });

  test('a resolver reads the SRV records: submission where the server listens, "." for POP3 and IMAP', async () => {
    const srv = async (label: string) =>
      (await resolver.resolveSrv(`${label}.${LOCAL_DOMAIN}`)).map(({ priority, weight, port, name }) => ({ priority, weight, port, name }));
    assert.deepEqual(await srv('_submission._tcp'), [{ priority: 10, weight: 1, port: server.port('submission'), name: HOST }]);
    assert.equal((await srv('_submissions._tcp'))[0]?.name, HOST);
    // RFC 2782: the target "." reaches a resolver's user as the root, an empty name.
    for (const label of ['_imaps._tcp', '_imap._tcp', '_pop3s._tcp', '_pop3._tcp']) {
      assert.deepEqual(await srv(label), [{ priority: 0, weight: 0, port: 0, name: '' }], label);
    }
    assert.deepEqual(await resolver.resolveCname(`autoconfig.${LOCAL_DOMAIN}`), [HOST]);
    assert.deepEqual(await resolver.resolveCname(`autodiscover.${LOCAL_DOMAIN}`), [HOST]);
    // The policy host's CNAME leads to the server's address.
    assert.deepEqual(await resolver.resolve4(`mta-sts.${LOCAL_DOMAIN}`), ['127.0.0.1']);
  });

  test('found through SRV, submitted, signed and relayed: the receiver sees SPF, DKIM and DMARC pass', async () => {
    const [service] = await resolver.resolveSrv(`_submission._tcp.${LOCAL_DOMAIN}`);
    assert.ok(service);
    assert.deepEqual(await resolver.resolve4(service.name), ['127.0.0.1']);
    const m = marker('published');
    await submit(service.port, { from: ALICE, to: ['bob@far.test'], marker: m });
    const received = await waitFor(() => sink.messages.find((msg) => msg.data.toString('latin1').includes(m)));

    const result = await authenticate(received.data, {
      ip: received.clientAddress,
      helo: received.helo,
      sender: received.sender,
      mta: 'mx.far.test',
      resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<never>,
      disableArc: true,
      disableBimi: true,
    });
    const [dkim, ...others] = result.dkim.results;
    assert.equal(others.length, 0);
    assert.equal(dkim?.status.result, 'pass', dkim?.status.comment);
    assert.equal(dkim?.signingDomain, LOCAL_DOMAIN);
    assert.equal(result.spf && result.spf.status.result, 'pass', JSON.stringify(result.spf));
    assert.ok(result.dmarc);
    assert.equal(result.dmarc.status.result, 'pass', JSON.stringify(result.dmarc));
    assert.equal(result.dmarc.policy, 'none');
  });
});
