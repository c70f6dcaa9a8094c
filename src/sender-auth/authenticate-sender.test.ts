import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dkimSign } from 'mailauth';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { generateDkimPrivateKey, parseDkimKey } from '../dkim/dkim-key.js';
import { dkimRecord } from '../dkim/dkim-record.js';
import { createDnsClient, type DnsClient } from '../dns/resolver.js';
import { authenticateSender, checkIprev } from './authenticate-sender.js';

let server: TestDnsServer;
let dns: DnsClient;
const IP = '192.0.2.10';

before(async () => {
  server = await TestDnsServer.start();
  dns = createDnsClient({ servers: [server.address], timeoutMs: 300 });
});
after(() => server.close());

function message(from: string, body = 'hello\r\n'): Buffer {
  return Buffer.from(`From: ${from}\r\nTo: bob@here.test\r\nSubject: s\r\nMessage-ID: <1@x>\r\n\r\n${body}`);
}

const check = (m: Buffer, sender: string, timeoutMs = 5000) =>
  authenticateSender(m, { ip: IP, helo: 'mail.sender.test', sender }, { dns, hostname: 'mx.here.test', timeoutMs });

describe('authenticateSender', () => {
  test('every signature is verified, each with its own result and d=', async () => {
    const pem = generateDkimPrivateKey('ed25519');
    const record = dkimRecord(parseDkimKey(pem, 'two.test', 'a'));
    server.set(record.name, [{ type: 'TXT', strings: record.strings }]);
    // The second signature's key is not published: it cannot be verified (RFC 8601 2.7.1 "neutral").
    const sigs = ['two.test', 'other.test'].map((d) => ({ signingDomain: d, selector: 'a', privateKey: pem, algorithm: 'ed25519-sha256', canonicalization: 'relaxed/relaxed' }));
    const signed = await dkimSign(message('a@two.test'), { ...sigs[0], signatureData: sigs, signTime: new Date() } as never);
    const verdict = await check(Buffer.concat([Buffer.from(signed.signatures, 'latin1'), message('a@two.test')]), 'a@two.test');
    assert.deepEqual(
      verdict.dkim.map((d) => [d.result, d.domain]).sort(),
      [['neutral', 'other.test'], ['pass', 'two.test']],
    );
  });

  test('DMARC: pct is read from the record, sp applies to a subdomain', async () => {
    server.set('_dmarc.pct.test', [{ type: 'TXT', strings: ['v=DMARC1; p=reject; sp=quarantine; pct=25'] }]);
    server.set('sub.pct.test', [{ type: 'A', address: '192.0.2.99' }]);
    const top = await check(message('x@pct.test'), 'x@spam.test');
    assert.deepEqual(top.dmarc, { result: 'fail', domain: 'pct.test', policy: 'reject', pct: 25, comment: undefined });
    const sub = await check(message('x@sub.pct.test'), 'x@spam.test');
    assert.equal(sub.dmarc.policy, 'quarantine');
    assert.equal(sub.dmarc.domain, 'sub.pct.test');
  });

  test('DMARC: a record using t= (RFC 9989) is not also sampled by pct', async () => {
    server.set('_dmarc.testing.test', [{ type: 'TXT', strings: ['v=DMARC1; p=reject; t=y; pct=10'] }]);
    const verdict = await check(message('x@testing.test'), 'x@spam.test');
    assert.equal(verdict.dmarc.policy, 'quarantine');
    assert.equal(verdict.dmarc.pct, 100);
  });

  test('DMARC: two From domains are a permerror, with the reason', async () => {
    const verdict = await check(message('a@one.test, b@two.test'), 'x@spam.test');
    assert.equal(verdict.dmarc.result, 'permerror');
    assert.ok(verdict.dmarc.comment);
  });

  test('SPF fail, and a DNS server that never answers is temperror, never a fail', async () => {
    server.set('spf.test', [{ type: 'TXT', strings: ['v=spf1 ip4:198.51.100.1 -all'] }]);
    assert.equal((await check(message('x@spf.test'), 'x@spf.test')).spf.result, 'fail');
    server.set('silent.test', [{ type: 'TXT', strings: ['v=spf1 -all'] }]);
    server.failWith('silent.test', 'drop');
    const verdict = await check(message('x@silent.test'), 'x@silent.test');
    assert.equal(verdict.spf.result, 'temperror');
    assert.notEqual(verdict.dmarc.result, 'fail');
  });

  test('past the time budget, everything not known is temperror', async () => {
    server.failWith('_dmarc.slow.test', 'drop');
    server.failWith('slow.test', 'drop');
    const verdict = await check(message('x@slow.test'), 'x@slow.test', 50);
    assert.equal(verdict.spf.result, 'temperror');
    assert.equal(verdict.dmarc.result, 'temperror');
    assert.equal(verdict.iprev.result, 'temperror');
    assert.match(verdict.dmarc.comment ?? '', /no verdict within 50 ms/);
  });
});

describe('checkIprev', () => {
  test('pass names the confirmed name; a PTR that leads elsewhere fails; no PTR fails', async () => {
    server.set('20.2.0.192.in-addr.arpa', [{ type: 'PTR', target: 'ok.test' }]);
    server.set('ok.test', [{ type: 'A', address: '192.0.2.20' }]);
    assert.deepEqual(await checkIprev('192.0.2.20', dns), { result: 'pass', ip: '192.0.2.20', name: 'ok.test', comment: undefined });
    server.set('21.2.0.192.in-addr.arpa', [{ type: 'PTR', target: 'ok.test' }]);
    assert.equal((await checkIprev('192.0.2.21', dns)).result, 'fail');
    assert.deepEqual(await checkIprev('192.0.2.22', dns), { result: 'fail', ip: '192.0.2.22', name: undefined, comment: 'no PTR record' });
    server.failWith('23.2.0.192.in-addr.arpa', 'servfail');
    assert.equal((await checkIprev('192.0.2.23', dns)).result, 'temperror');
  });
});
