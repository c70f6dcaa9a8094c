import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { pino } from 'pino';
import { TestDnsServer } from '../../../test/support/dns-server.js';
import { SmtpSink, type SinkOptions } from '../../../test/support/smtp-sink.js';
import { configSchema } from '../../config/schema.js';
import { dkimKeyPath, generateDkimPrivateKey } from '../../dkim/dkim-key.js';
import { DkimSigner } from '../../dkim/signer.js';
import { MtaStsCache } from '../../dns/mta-sts.js';
import { createDnsClient, type DnsClient } from '../../dns/resolver.js';
import { makeCertificate } from '../../../test/support/test-certificate.js';
import { replyLine } from '../../mail/reply.js';
import type { CourierJob, CourierRecipient, DeliveryOutcome } from '../../queue/courier.js';
import { RemoteDelivery, type RemoteDeliveryOptions } from './remote-delivery.js';

const logger = pino({ level: 'silent' });
const MESSAGE = Buffer.from('From: alice@origin.test\r\nTo: bob@dest.test\r\nSubject: hello\r\n\r\nHi Bob.\r\n');

let dnsServer: TestDnsServer;
let dns: DnsClient;
let tmp: string;
const sinks: SmtpSink[] = [];

before(async () => {
  dnsServer = await TestDnsServer.start();
  dns = createDnsClient({ servers: [dnsServer.address], timeoutMs: 2000 });
  tmp = mkdtempSync(join(tmpdir(), 'postern-remote-'));
});
after(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  await dnsServer.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function sink(opts: SinkOptions = {}, host?: string, port?: number): Promise<SmtpSink> {
  const s = await SmtpSink.start(opts, host, port);
  sinks.push(s);
  return s;
}

function delivery(relay: Record<string, unknown>, over: Partial<RemoteDeliveryOptions> = {}): RemoteDelivery {
  const config = configSchema.parse({
    hostname: 'postern.test',
    relay: { connect_timeout: '2s', greeting_timeout: '5s', connection_cache_time: '10s', ...relay },
  });
  return new RemoteDelivery({ config, dns, logger, ...over });
}

type TestJob = Omit<CourierJob, 'recipients'> & { recipients: readonly Omit<CourierRecipient, 'mailboxes'>[] };

function job(over: Partial<TestJob> = {}): CourierJob {
  const { recipients = [{ address: 'bob@dest.test' }], ...rest } = over;
  return {
    queueId: 'Q1',
    sender: 'alice@origin.test',
    domain: 'dest.test',
    message: MESSAGE,
    mailParams: {},
    alreadyDelivered: new Set(),
    ...rest,
    recipients: recipients.map((r) => ({ ...r, mailboxes: [] })),
  };
}

/** The reply as one line ('' when nobody said anything), as the store keeps it. */
function line(o: DeliveryOutcome | undefined): string {
  return o?.reply ? replyLine(o.reply) : '';
}

/** An outcome with its reply as one line, for deepEqual. */
function flat(o: DeliveryOutcome | undefined): Record<string, unknown> {
  return { ...o, reply: line(o) };
}

async function using<T>(d: RemoteDelivery, fn: (d: RemoteDelivery) => Promise<T>): Promise<T> {
  try {
    return await fn(d);
  } finally {
    await d.close();
  }
}

describe('RemoteDelivery via a transport', () => {
  test('delivers, with one outcome per recipient: 2xx delivered, 4xx deferred, 5xx failed', async () => {
    const s = await sink({ recipients: { 'busy@dest.test': '450 4.2.0 mailbox busy', 'nobody@dest.test': '550 5.1.1 no such user' } });
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${s.port}` } });
    const outcomes = await using(d, (d) =>
      d.deliver(job({ recipients: [{ address: 'bob@dest.test' }, { address: 'busy@dest.test' }, { address: 'nobody@dest.test' }] })),
    );
    assert.deepEqual(flat(outcomes[0]), { kind: 'delivered', reply: '250 2.0.0 Ok: queued', remoteHost: '[127.0.0.1]:' + s.port });
    assert.equal(outcomes[1]!.kind, 'deferred');
    assert.equal(line(outcomes[1]), '450 4.2.0 mailbox busy');
    const failed = outcomes[2]!;
    assert.ok(failed.kind === 'failed');
    assert.equal(failed.status, '5.1.1');
    assert.equal(line(failed), '550 5.1.1 no such user');
    assert.match(failed.reason, /refused the recipient/);
    assert.deepEqual(s.messages[0]!.recipients, ['bob@dest.test']);
    assert.deepEqual(s.messages[0]!.data, MESSAGE);
    assert.equal(s.messages[0]!.helo, 'postern.test');
  });

  test('dsnPassedOn: only when the peer offers DSN and the recipient had NOTIFY to pass on', async () => {
    const recipients = [{ address: 'bob@dest.test', notify: ['SUCCESS' as const] }, { address: 'carol@dest.test' }];
    const withDsn = await sink({ dsn: true });
    const a = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${withDsn.port}` } });
    const [told, silent] = await using(a, (d) => d.deliver(job({ recipients })));
    assert.ok(told?.kind === 'delivered' && told.dsnPassedOn === true);
    assert.ok(silent?.kind === 'delivered' && !silent.dsnPassedOn, 'no NOTIFY was sent for carol');
    assert.deepEqual(withDsn.messages[0]!.rcptParams[0], ['NOTIFY=SUCCESS']);

    const withoutDsn = await sink({ dsn: false });
    const b = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${withoutDsn.port}` } });
    const [relayed] = await using(b, (d) => d.deliver(job({ recipients })));
    assert.ok(relayed?.kind === 'delivered' && !relayed.dsnPassedOn, 'a peer without DSN leaves the report to us');
    assert.deepEqual(withoutDsn.messages[0]!.rcptParams[0], []);
  });

  test('a message needing 8BITMIME fails with 5.6.3 at a peer without it', async () => {
    const s = await sink({ eightBitMime: false });
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${s.port}` } });
    const [o] = await using(d, (d) => d.deliver(job({ message: Buffer.from('Subject: \u00e9\r\n\r\n\u00e9\r\n', 'utf8') })));
    assert.ok(o?.kind === 'failed');
    assert.equal(o.status, '5.6.3');
    assert.equal(line(o), '');
    assert.match(o.reason, /8BITMIME/);
  });

  test('a connection dropped during DATA defers', async () => {
    const s = await sink({ dropMidData: true });
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${s.port}` } });
    const [o] = await using(d, (d) => d.deliver(job()));
    assert.equal(o?.kind, 'deferred');
    assert.match(o!.kind === 'deferred' ? o.reason : '', /closed|failed/);
  });

  test('reuses the connection for the next message to the same destination (no RSET after a completed one)', async () => {
    const s = await sink();
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${s.port}` } });
    await using(d, async (d) => {
      assert.equal((await d.deliver(job()))[0]!.kind, 'delivered');
      assert.equal((await d.deliver(job({ queueId: 'Q2', recipients: [{ address: 'carol@dest.test' }] })))[0]!.kind, 'delivered');
    });
    assert.equal(s.connections, 1);
    assert.equal(s.messages.length, 2);
    assert.ok(!s.commands.includes('RSET'));
  });

  test('a kept connection the server closes with 421 at MAIL is replaced at once: delivered, not deferred', async () => {
    const s = await sink({ closeAfterMessages: 1 });
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${s.port}` } });
    await using(d, async (d) => {
      assert.equal((await d.deliver(job()))[0]!.kind, 'delivered');
      assert.equal((await d.deliver(job({ queueId: 'Q2', recipients: [{ address: 'carol@dest.test' }] })))[0]!.kind, 'delivered');
    });
    assert.equal(s.connections, 2);
    assert.deepEqual(s.messages.map((m) => m.connection), [1, 2]);
  });

  test('holds to max_connections_per_destination, queueing the other jobs', async () => {
    const s = await sink();
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${s.port}` }, max_connections_per_destination: 1 });
    const outcomes = await using(d, (d) => Promise.all([1, 2, 3, 4].map((n) => d.deliver(job({ queueId: `Q${n}` })))));
    assert.deepEqual(outcomes.map((o) => o[0]!.kind), ['delivered', 'delivered', 'delivered', 'delivered']);
    assert.equal(s.peakConnections, 1);
    assert.equal(s.messages.length, 4);
  });

  test('holds to max_connections across destinations', async () => {
    const a = await sink();
    const b = await sink();
    const d = delivery({
      transports: { 'a.test': `smtp:[127.0.0.1]:${a.port}`, 'b.test': `smtp:[127.0.0.1]:${b.port}` },
      max_connections: 1,
    });
    const outcomes = await using(d, (d) =>
      Promise.all(['a.test', 'b.test', 'a.test', 'b.test'].map((domain) => d.deliver(job({ domain, recipients: [{ address: `x@${domain}` }] })))),
    );
    assert.ok(outcomes.every((o) => o[0]!.kind === 'delivered'));
    assert.equal(a.messages.length + b.messages.length, 4);
    assert.equal(a.peakConnections + b.peakConnections, 2, 'each saw one connection at a time');
  });

  test('signs with the DKIM signer before sending', async () => {
    const keysDir = join(tmp, 'dkim');
    mkdirSync(keysDir, { recursive: true });
    writeFileSync(dkimKeyPath(keysDir, 'origin.test', 'postern'), generateDkimPrivateKey('ed25519'), { mode: 0o600 });
    const s = await sink();
    const signer = new DkimSigner({ keysDir, selector: 'postern', logger });
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${s.port}` } }, { signer });
    assert.equal((await using(d, (d) => d.deliver(job())))[0]!.kind, 'delivered');
    const text = s.messages[0]!.data.toString();
    assert.match(text, /^DKIM-Signature: .*d=origin\.test/s);
    assert.ok(text.endsWith(MESSAGE.toString()));
  });
});

describe('RemoteDelivery via a smart host', () => {
  test('AUTH over required STARTTLS with a verified certificate (tls_ca_file)', async () => {
    const certificate = await makeCertificate('relay.isp.test');
    const caFile = join(tmp, 'relay-ca.pem');
    writeFileSync(caFile, certificate.cert);
    dnsServer.set('relay.isp.test', [{ type: 'A', address: '127.0.0.1' }]);
    const s = await sink({ starttls: true, certificate, auth: { username: 'postern', password: 'relay secret' } });
    const d = delivery({
      smarthost: `relay.isp.test:${s.port}`,
      smarthost_username: 'postern',
      smarthost_password: 'relay secret',
      tls_ca_file: caFile,
    });
    const outcomes = await using(d, (d) => d.deliver(job({ domain: 'anywhere.test', recipients: [{ address: 'x@anywhere.test' }] })));
    assert.deepEqual(outcomes.map(flat), [{ kind: 'delivered', reply: '250 2.0.0 Ok: queued', remoteHost: `relay.isp.test[127.0.0.1]:${s.port}` }]);
    assert.equal(s.messages[0]!.authUser, 'postern');
    assert.equal(s.messages[0]!.tls, true);
  });

  test('implicit TLS with the password in a file', async () => {
    const passwordFile = join(tmp, 'smarthost-password');
    writeFileSync(passwordFile, 'from a file\n');
    const s = await sink({ implicitTls: true, auth: { username: 'postern', password: 'from a file' } });
    const d = delivery({
      smarthost: `[127.0.0.1]:${s.port}`,
      smarthost_tls: 'implicit',
      smarthost_tls_verify: false,
      smarthost_username: 'postern',
      smarthost_password_file: passwordFile,
    });
    const [o] = await using(d, (d) => d.deliver(job()));
    assert.equal(o?.kind, 'delivered');
    assert.equal(s.messages[0]!.authUser, 'postern');
  });

  test('refused credentials and an unverifiable certificate defer, and nothing is sent', async () => {
    const s = await sink({ starttls: true, auth: { username: 'postern', password: 'right' } });
    const wrong = delivery({ smarthost: `[127.0.0.1]:${s.port}`, smarthost_tls_verify: false, smarthost_username: 'postern', smarthost_password: 'wrong' });
    const [o] = await using(wrong, (d) => d.deliver(job()));
    assert.ok(o?.kind === 'deferred');
    assert.match(o.reason, /credentials/);
    assert.match(line(o), /^535/);
    const unverified = delivery({ smarthost: `[127.0.0.1]:${s.port}`, smarthost_username: 'postern', smarthost_password: 'right' });
    const [u] = await using(unverified, (d) => d.deliver(job()));
    assert.ok(u?.kind === 'deferred');
    assert.match(u.reason, /TLS/);
    assert.equal(s.messages.length, 0);
  });
});

describe('RemoteDelivery via MX', () => {
  test('tries the MX hosts in preference order: the first is down, the second takes it', async () => {
    const s = await sink();
    dnsServer.set('dest.test', [
      { type: 'MX', preference: 10, exchange: 'mx1.dest.test' },
      { type: 'MX', preference: 20, exchange: 'mx2.dest.test' },
    ]);
    dnsServer.set('mx1.dest.test', [{ type: 'A', address: '127.0.0.2' }]);
    dnsServer.set('mx2.dest.test', [{ type: 'A', address: '127.0.0.1' }]);
    const d = delivery({ mx_port: s.port });
    const [o] = await using(d, (d) => d.deliver(job()));
    assert.deepEqual(flat(o), { kind: 'delivered', reply: '250 2.0.0 Ok: queued', remoteHost: `mx2.dest.test[127.0.0.1]:${s.port}` });
  });

  test('a 4xx greeting sends the delivery to the next MX host', async () => {
    const good = await sink();
    const busy = await sink({ greeting: '421 4.3.2 too busy' }, '127.0.0.3', good.port);
    dnsServer.set('busy.test', [
      { type: 'MX', preference: 10, exchange: 'mx1.busy.test' },
      { type: 'MX', preference: 20, exchange: 'mx2.busy.test' },
    ]);
    dnsServer.set('mx1.busy.test', [{ type: 'A', address: '127.0.0.3' }]);
    dnsServer.set('mx2.busy.test', [{ type: 'A', address: '127.0.0.1' }]);
    const d = delivery({ mx_port: good.port });
    const [o] = await using(d, (d) => d.deliver(job({ domain: 'busy.test', recipients: [{ address: 'x@busy.test' }] })));
    assert.equal(o?.kind, 'delivered');
    assert.equal(busy.connections, 1);
    assert.equal(good.messages.length, 1);
  });

  test('every host down: deferred with the reason', async () => {
    dnsServer.set('down.test', [{ type: 'MX', preference: 10, exchange: 'mx.down.test' }]);
    dnsServer.set('mx.down.test', [{ type: 'A', address: '127.0.0.2' }]);
    const s = await sink();
    const d = delivery({ mx_port: s.port });
    const [o] = await using(d, (d) => d.deliver(job({ domain: 'down.test', recipients: [{ address: 'x@down.test' }] })));
    assert.ok(o?.kind === 'deferred');
    assert.match(o.reason, /ECONNREFUSED/);
  });

  test('null MX fails at once with 5.1.10; no such domain with 5.1.2; a DNS failure defers', async () => {
    dnsServer.set('nullmx.test', [{ type: 'MX', preference: 0, exchange: '.' }]);
    dnsServer.failWith('servfail.test', 'servfail');
    const d = delivery({});
    await using(d, async (d) => {
      const [nullMx] = await d.deliver(job({ domain: 'nullmx.test', recipients: [{ address: 'x@nullmx.test' }] }));
      assert.ok(nullMx?.kind === 'failed');
      assert.equal(nullMx.status, '5.1.10');
      assert.match(nullMx.reason, /null MX/);
      const [missing] = await d.deliver(job({ domain: 'missing.test', recipients: [{ address: 'x@missing.test' }] }));
      assert.ok(missing?.kind === 'failed');
      assert.equal(missing.status, '5.1.2');
      const [servfail] = await d.deliver(job({ domain: 'servfail.test', recipients: [{ address: 'x@servfail.test' }] }));
      assert.equal(servfail?.kind, 'deferred');
    });
  });
});

describe('RemoteDelivery with MTA-STS (RFC 8461)', () => {
  let policyServer: Server;
  let mtaSts: MtaStsCache;

  before(async () => {
    const web = await makeCertificate('mta-sts.sts.test');
    policyServer = createHttpsServer({ cert: web.cert, key: web.key }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n');
    });
    await new Promise<void>((resolve) => policyServer.listen(0, '127.0.0.1', resolve));
    dnsServer.set('_mta-sts.sts.test', [{ type: 'TXT', strings: ['v=STSv1; id=20250101'] }]);
    dnsServer.set('mta-sts.sts.test', [{ type: 'A', address: '127.0.0.1' }]);
    dnsServer.set('mx.sts.test', [{ type: 'A', address: '127.0.0.1' }]);
    dnsServer.set('rogue.sts.test', [{ type: 'A', address: '127.0.0.1' }]);
    mtaSts = new MtaStsCache({ dns, httpsPort: (policyServer.address() as { port: number }).port, ca: web.cert, fetchTimeoutMs: 2000, logger });
  });
  after(() => new Promise<void>((resolve) => policyServer.close(() => resolve())));

  const stsJob = job({ domain: 'sts.test', recipients: [{ address: 'x@sts.test' }] });

  test('enforce: delivered over verified TLS to the MX the policy names', async () => {
    const certificate = await makeCertificate('mx.sts.test');
    const caFile = join(tmp, 'mx-sts-ca.pem');
    writeFileSync(caFile, certificate.cert);
    const s = await sink({ starttls: true, certificate });
    dnsServer.set('sts.test', [{ type: 'MX', preference: 10, exchange: 'mx.sts.test' }]);
    const d = delivery({ mx_port: s.port, tls_ca_file: caFile }, { mtaSts });
    const [o] = await using(d, (d) => d.deliver(stsJob));
    assert.equal(o?.kind, 'delivered');
    assert.equal(s.messages[0]!.tls, true);
  });

  test('enforce: a peer without a valid certificate is refused (deferred), never sent to in plain text', async () => {
    const s = await sink({ starttls: true });
    dnsServer.set('sts.test', [{ type: 'MX', preference: 10, exchange: 'mx.sts.test' }]);
    const d = delivery({ mx_port: s.port }, { mtaSts });
    const [o] = await using(d, (d) => d.deliver(stsJob));
    assert.ok(o?.kind === 'deferred');
    assert.match(o.reason, /TLS handshake/);
    assert.equal(s.messages.length, 0);
  });

  test('enforce: an MX host the policy does not name is not used', async () => {
    const s = await sink();
    dnsServer.set('sts.test', [{ type: 'MX', preference: 10, exchange: 'rogue.sts.test' }]);
    const d = delivery({ mx_port: s.port }, { mtaSts });
    const [o] = await using(d, (d) => d.deliver(stsJob));
    assert.ok(o?.kind === 'deferred');
    assert.match(o.reason, /MTA-STS policy/);
    assert.equal(s.connections, 0);
  });
});

/**
 * A peer that stops answering: at once (no greeting), or once it has said 220 to STARTTLS (and
 * then takes part in no TLS handshake). Counts connections, those the client closed, and
 * whether the client's TLS ClientHello arrived.
 */
async function stallingPeer(host: string, port: number, stall: 'greeting' | 'starttls'): Promise<{ port: number; connections: number; closed: number; clientHello: boolean; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server = createNetServer((socket) => {
    peer.connections++;
    open.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      peer.closed++;
      open.delete(socket);
    });
    if (stall === 'greeting') return void socket.resume();
    socket.write('220 stall.test ESMTP\r\n');
    let buffered = '';
    let tls = false;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      if (tls) {
        peer.clientHello = true;
        return;
      }
      buffered += chunk;
      for (let eol = buffered.indexOf('\r\n'); eol >= 0; eol = buffered.indexOf('\r\n')) {
        const verb = buffered.slice(0, eol).toUpperCase();
        buffered = buffered.slice(eol + 2);
        if (verb.startsWith('EHLO')) socket.write('250-stall.test\r\n250 STARTTLS\r\n');
        else if (verb === 'STARTTLS') {
          socket.write('220 2.0.0 Go ahead\r\n'); // and nothing more
          tls = true;
          return;
        } else socket.write('502 5.5.1 Not here\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address();
  const peer = {
    port: address !== null && typeof address !== 'string' ? address.port : 0,
    connections: 0,
    closed: 0,
    clientHello: false,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return peer;
}

describe('RemoteDelivery.abort (shutdown)', () => {
  // Timeouts far beyond the test: only abort() can end the waits.
  const patient = { greeting_timeout: '10m', connect_timeout: '10m' };

  test('cuts a session waiting for the greeting: deferred, and the next MX host is not tried', async () => {
    const first = await stallingPeer('127.0.0.4', 0, 'greeting');
    const second = await stallingPeer('127.0.0.5', first.port, 'greeting');
    dnsServer.set('stall.test', [
      { type: 'MX', preference: 10, exchange: 'mx1.stall.test' },
      { type: 'MX', preference: 20, exchange: 'mx2.stall.test' },
    ]);
    dnsServer.set('mx1.stall.test', [{ type: 'A', address: '127.0.0.4' }]);
    dnsServer.set('mx2.stall.test', [{ type: 'A', address: '127.0.0.5' }]);
    const d = delivery({ mx_port: first.port, ...patient });
    try {
      const pending = d.deliver(job({ domain: 'stall.test', recipients: [{ address: 'x@stall.test' }] }));
      while (first.connections === 0) await sleep(5);
      d.abort();
      const [o] = await pending;
      assert.ok(o?.kind === 'deferred');
      assert.match(o.reason, /cut: Postern is shutting down/);
      while (first.closed === 0) await sleep(5);
      assert.equal(second.connections, 0, 'no other host after abort()');
      const [later] = await d.deliver(job({ domain: 'stall.test', recipients: [{ address: 'x@stall.test' }] }));
      assert.equal(later?.kind, 'deferred');
      assert.equal(first.connections + second.connections, 1, 'no new session after abort()');
    } finally {
      await d.close();
      await first.close();
      await second.close();
    }
  });

  test('cuts an MX lookup the DNS server never answers: deferred at once, not at the resolver\'s timeout', { timeout: 60_000 }, async () => {
    // A resolver as patient as the sessions above: only abort() can end the wait. Without the
    // cut the test would run into its own timeout (a hang detector, not a timing assertion).
    const patientDns = createDnsClient({ servers: [dnsServer.address], timeoutMs: 600_000 });
    dnsServer.failWith('silent-dns.test', 'drop');
    const d = delivery({}, { dns: patientDns });
    try {
      const pending = d.deliver(job({ domain: 'silent-dns.test', recipients: [{ address: 'x@silent-dns.test' }] }));
      while (dnsServer.requestCount('silent-dns.test', 'MX') === 0) await sleep(5);
      d.abort();
      const [o] = await pending;
      assert.ok(o?.kind === 'deferred');
      assert.match(o.reason, /ECANCELLED/);
      assert.match(o.reason, /cut: Postern is shutting down/);
    } finally {
      dnsServer.failWith('silent-dns.test', undefined);
      await d.close();
    }
  });

  test('cuts a stalled STARTTLS handshake, and tries no plain-text session after it', async () => {
    const peer = await stallingPeer('127.0.0.1', 0, 'starttls');
    const d = delivery({ transports: { 'dest.test': `smtp:[127.0.0.1]:${peer.port}` }, ...patient });
    try {
      const pending = d.deliver(job());
      while (!peer.clientHello) await sleep(5);
      d.abort();
      const [o] = await pending;
      assert.ok(o?.kind === 'deferred');
      assert.match(o.reason, /cut: Postern is shutting down/);
      assert.equal(peer.connections, 1, 'no retry without TLS');
    } finally {
      await d.close();
      await peer.close();
    }
  });
});
