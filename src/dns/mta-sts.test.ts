import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { pino } from 'pino';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { TestMtaStsServer, policyText } from '../../test/support/mta-sts-server.js';
import { createDnsClient, type DnsClient } from './resolver.js';
import { MtaStsCache, mxMatchesPolicy, type MtaStsCacheOptions } from './mta-sts.js';

const logger = pino({ level: process.env.MTA_STS_DEBUG ? 'debug' : 'silent' });
const DOMAINS = ['stuck.test', 'enforce.test', 'testing.test', 'none.test', 'cached.test', 'disk.test', 'broken.test', 'later.test', 'shared.test'];

let dnsServer: TestDnsServer;
let https: TestMtaStsServer;
let dns: DnsClient;
let dataDir: string;

before(async () => {
  [dnsServer, https] = await Promise.all([TestDnsServer.start(), TestMtaStsServer.start(DOMAINS)]);
  dns = createDnsClient({ servers: [dnsServer.address], timeoutMs: 2000 });
  // The policy hosts: every mta-sts.<domain> (and one the certificate does not name) is us.
  for (const domain of [...DOMAINS, 'unnamed.test']) dnsServer.set(`mta-sts.${domain}`, [{ type: 'A', address: '127.0.0.1' }]);
  dataDir = mkdtempSync(join(tmpdir(), 'postern-mta-sts-'));
});
after(async () => {
  await Promise.all([dnsServer.close(), https.close()]);
  rmSync(dataDir, { recursive: true, force: true });
});

/** A clock the test moves forward by hand. */
function clock(start = Date.now()): { now: () => number; advance: (seconds: number) => void } {
  let t = start;
  return { now: () => t, advance: (seconds) => (t += seconds * 1000) };
}

function cache(extra: Partial<MtaStsCacheOptions> = {}): MtaStsCache {
  return new MtaStsCache({ dns, httpsPort: https.port, ca: https.ca, fetchTimeoutMs: 2000, logger, ...extra });
}

function announce(domain: string, id: string | undefined): void {
  if (id === undefined) dnsServer.remove(`_mta-sts.${domain}`);
  else dnsServer.set(`_mta-sts.${domain}`, [{ type: 'TXT', strings: [`v=STSv1; id=${id};`] }]);
}

describe('MtaStsCache', () => {
  test('abort() ends a fetch stuck in its TLS handshake at once, not at its timeout', async () => {
    // Accepts the connection and never says a word: the handshake waits for the timeout.
    const silent = createServer((socket) => socket.on('error', () => undefined));
    const held = new Set<Socket>();
    silent.on('connection', (socket) => held.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      announce('stuck.test', 's1');
      const port = (silent.address() as AddressInfo).port;
      const sts = cache({ httpsPort: port, fetchTimeoutMs: 600_000 });
      const answer = sts.policyFor('stuck.test');
      while (held.size === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      sts.abort();
      assert.equal(await answer, undefined, 'no policy: the delivery goes on without one');
      assert.equal(await sts.policyFor('stuck.test'), undefined, 'a fetch after abort() ends at once too');
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  test('fetches enforce, testing and none policies', async () => {
    announce('enforce.test', 'e1');
    https.setPolicy('enforce.test', policyText({ mode: 'enforce', mx: ['mx.enforce.test', '*.mx.enforce.test'], maxAge: 86400 }));
    announce('testing.test', 't1');
    https.setPolicy('testing.test', policyText({ mode: 'testing', mx: ['mx.testing.test'], maxAge: 3600 }));
    announce('none.test', 'n1');
    https.setPolicy('none.test', policyText({ mode: 'none', mx: [], maxAge: 60 }));

    const sts = cache();
    const enforce = await sts.policyFor('Enforce.Test');
    assert.deepEqual(enforce, { mode: 'enforce', mx: ['mx.enforce.test', '*.mx.enforce.test'], maxAge: 86400, id: 'e1' });
    assert.ok(enforce && mxMatchesPolicy(enforce, 'a.mx.enforce.test'));
    assert.ok(enforce && !mxMatchesPolicy(enforce, 'mx.elsewhere.test'));
    assert.deepEqual(await sts.policyFor('testing.test'), { mode: 'testing', mx: ['mx.testing.test'], maxAge: 3600, id: 't1' });
    assert.deepEqual(await sts.policyFor('none.test'), { mode: 'none', mx: [], maxAge: 60, id: 'n1' });
  });

  test('no _mta-sts record: no policy, and no fetch', async () => {
    https.setPolicy('later.test', policyText({ mode: 'enforce', mx: ['mx.later.test'], maxAge: 600 }));
    assert.equal(await cache().policyFor('later.test'), undefined);
    assert.equal(https.fetches('later.test'), 0);
    // Two v=STSv1 records are no record at all (section 3.1).
    dnsServer.set('_mta-sts.later.test', [
      { type: 'TXT', strings: ['v=STSv1; id=a'] },
      { type: 'TXT', strings: ['v=STSv1; id=b'] },
    ]);
    assert.equal(await cache().policyFor('later.test'), undefined);
    assert.equal(https.fetches('later.test'), 0);
  });

  test('cached until the id changes; a failed refresh keeps the cached policy', async () => {
    const time = clock();
    const sts = cache({ now: time.now });
    announce('cached.test', 'v1');
    https.setPolicy('cached.test', policyText({ mode: 'enforce', mx: ['mx1.cached.test'], maxAge: 3600 }));
    assert.deepEqual((await sts.policyFor('cached.test'))?.mx, ['mx1.cached.test']);
    await sts.policyFor('cached.test');
    assert.equal(https.fetches('cached.test'), 1, 'the same id is not fetched again');

    announce('cached.test', 'v2');
    https.setPolicy('cached.test', policyText({ mode: 'enforce', mx: ['mx2.cached.test'], maxAge: 3600 }));
    assert.deepEqual(await sts.policyFor('cached.test'), { mode: 'enforce', mx: ['mx2.cached.test'], maxAge: 3600, id: 'v2' });
    assert.equal(https.fetches('cached.test'), 2);

    // The id changes but the new policy cannot be fetched: the one we hold stays in force.
    announce('cached.test', 'v3');
    https.setPolicy('cached.test', { body: 'gone', status: 500 });
    assert.equal((await sts.policyFor('cached.test'))?.id, 'v2');
    // Section 3.3: a failed version is not fetched again for a while...
    await sts.policyFor('cached.test');
    assert.equal(https.fetches('cached.test'), 3);
    // ...but it is after that.
    time.advance(6 * 60);
    https.setPolicy('cached.test', policyText({ mode: 'testing', mx: ['mx3.cached.test'], maxAge: 3600 }));
    assert.deepEqual(await sts.policyFor('cached.test'), { mode: 'testing', mx: ['mx3.cached.test'], maxAge: 3600, id: 'v3' });
    assert.equal(https.fetches('cached.test'), 4);

    // The record disappears (an attacker can strip it): the policy holds until max_age...
    announce('cached.test', undefined);
    assert.equal((await sts.policyFor('cached.test'))?.id, 'v3');
    dnsServer.failWith('_mta-sts.cached.test', 'servfail');
    assert.equal((await sts.policyFor('cached.test'))?.id, 'v3');
    dnsServer.failWith('_mta-sts.cached.test', undefined);
    // ...and no longer.
    time.advance(3600);
    assert.equal(await sts.policyFor('cached.test'), undefined);
  });

  test('an expired policy is fetched again even with the same id', async () => {
    const time = clock();
    const sts = cache({ now: time.now });
    announce('shared.test', 's1');
    https.setPolicy('shared.test', policyText({ mode: 'enforce', mx: ['mx.shared.test'], maxAge: 100 }));
    const [a, b] = await Promise.all([sts.policyFor('shared.test'), sts.policyFor('shared.test')]);
    assert.deepEqual(a, b);
    assert.equal(https.fetches('shared.test'), 1, 'concurrent questions share one fetch');
    time.advance(101);
    await sts.policyFor('shared.test');
    assert.equal(https.fetches('shared.test'), 2);
  });

  test('policies survive a restart through data_dir', async () => {
    announce('disk.test', 'd1');
    https.setPolicy('disk.test', policyText({ mode: 'enforce', mx: ['mx.disk.test'], maxAge: 86400 }));
    const first = await cache({ dataDir }).policyFor('disk.test');
    assert.equal(first?.id, 'd1');
    const saved = JSON.parse(readFileSync(join(dataDir, 'mta-sts', 'disk.test.json'), 'utf8')) as { policy: unknown };
    assert.deepEqual(saved.policy, first);

    // A new process; DNS now fails and the policy host is gone: the saved policy still applies.
    dnsServer.failWith('_mta-sts.disk.test', 'servfail');
    https.setPolicy('disk.test', undefined);
    try {
      assert.deepEqual(await cache({ dataDir }).policyFor('disk.test'), first);
      assert.equal(https.fetches('disk.test'), 1);
      // Without the saved policy the domain would have none.
      assert.equal(await cache().policyFor('disk.test'), undefined);
    } finally {
      dnsServer.failWith('_mta-sts.disk.test', undefined);
    }
  });

  test('a policy that cannot be fetched safely is no policy', async () => {
    const cases: Array<[string, Parameters<TestMtaStsServer['setPolicy']>[1], Partial<MtaStsCacheOptions>]> = [
      ['not found', undefined, {}],
      ['a redirect', { body: '', status: 301 }, {}],
      ['not text/plain', { body: policyText({ mode: 'enforce', mx: ['mx.broken.test'], maxAge: 60 }), contentType: 'text/html' }, {}],
      ['too large', { body: policyText({ mode: 'enforce', mx: ['mx.broken.test'], maxAge: 60 }) + `x: ${'y'.repeat(70_000)}\n` }, {}],
      ['invalid', 'version: STSv1\nmode: enforce\n', {}],
      ['no answer in time', { body: '', hang: true }, { fetchTimeoutMs: 200 }],
      ['a certificate from a CA we do not trust', policyText({ mode: 'enforce', mx: ['mx.broken.test'], maxAge: 60 }), { ca: undefined }],
    ];
    for (const [what, answer, options] of cases) {
      announce('broken.test', `b${https.fetches('broken.test')}`);
      https.setPolicy('broken.test', answer);
      const before = https.fetches('broken.test');
      assert.equal(await cache(options).policyFor('broken.test'), undefined, what);
      if (what !== 'a certificate from a CA we do not trust') assert.equal(https.fetches('broken.test'), before + 1, `${what}: fetched`);
    }
    // Sanity: the same policy, served properly, is taken.
    https.setPolicy('broken.test', policyText({ mode: 'enforce', mx: ['mx.broken.test'], maxAge: 60 }));
    assert.equal((await cache().policyFor('broken.test'))?.mode, 'enforce');
  });

  test('the certificate must be valid for mta-sts.<domain>', async () => {
    announce('unnamed.test', 'u1');
    https.setPolicy('unnamed.test', policyText({ mode: 'enforce', mx: ['mx.unnamed.test'], maxAge: 60 }));
    assert.equal(await cache().policyFor('unnamed.test'), undefined);
    // The HTTP exchange never happened: the handshake failed first.
    assert.equal(https.fetches('unnamed.test'), 0);
  });

  test('the test CA may be added to the system CAs instead of replacing them', async () => {
    announce('later.test', 'l1');
    https.setPolicy('later.test', policyText({ mode: 'testing', mx: ['mx.later.test'], maxAge: 60 }));
    assert.equal((await cache({ ca: [...rootCertificates, https.ca] }).policyFor('later.test'))?.mode, 'testing');
  });

  test('the policy host must resolve through our DNS', async () => {
    announce('nohost.test', 'h1');
    assert.equal(await cache().policyFor('nohost.test'), undefined);
  });
});
