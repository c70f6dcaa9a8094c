import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth';
import { pino } from 'pino';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { dkimKeyPath, generateDkimPrivateKey, parseDkimKey, type DkimAlgorithm } from './dkim-key.js';
import { dkimRecord, formatDkimRecord } from './dkim-record.js';
import { DkimSigner } from './signer.js';

const SELECTOR = 'postern';
const logger = pino({ level: 'silent' });

const MESSAGE = Buffer.from(
  [
    'Received: from client.example (client.example [127.0.0.1]) by mx.postern.test; Mon, 1 Jan 2024 00:00:00 +0000',
    'From: Alice <alice@sender.test>',
    'To: Bob <bob@far.test>',
    'Subject: quarterly   figures',
    'Date: Mon, 1 Jan 2024 00:00:00 +0000',
    'Message-ID: <1@sender.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'The figures are attached.  ',
    '',
    '',
  ].join('\r\n'),
);

let dns: TestDnsServer;
let keysDir: string;

/** mailauth's DNS lookups, answered by the test DNS server over real UDP. */
function resolverFor(server: TestDnsServer) {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server.address]);
  return (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]>;
}

/** Writes a fresh key for `domain` and publishes its record in the test DNS. */
function provision(domain: string, algorithm: DkimAlgorithm): void {
  const pem = generateDkimPrivateKey(algorithm);
  writeFileSync(dkimKeyPath(keysDir, domain, SELECTOR), pem, { mode: 0o600 });
  const record = dkimRecord(parseDkimKey(pem, domain, SELECTOR));
  dns.set(record.name, [{ type: 'TXT', strings: record.strings }]);
}

/** mailauth names the algorithm and canonicalization "algo" and "format" in its results. */
interface Verdict {
  readonly signingDomain?: string;
  readonly selector?: string;
  readonly algo?: string;
  readonly format?: string;
  readonly status: { readonly result: string; readonly comment?: string };
}

async function verify(message: Buffer): Promise<Verdict[]> {
  const result = await dkimVerify(message, { resolver: resolverFor(dns) });
  return result.results as unknown as Verdict[];
}

before(async () => {
  dns = await TestDnsServer.start();
  keysDir = mkdtempSync(join(tmpdir(), 'postern-dkim-'));
});

after(async () => {
  await dns.close();
  rmSync(keysDir, { recursive: true, force: true });
});

describe('DkimSigner', () => {
  for (const algorithm of ['ed25519', 'rsa'] as const) {
    test(`a message signed with ${algorithm} verifies against the published record`, async () => {
      const domain = `${algorithm}.sender.test`;
      provision(domain, algorithm);
      const signer = new DkimSigner({ keysDir, selector: SELECTOR, logger });

      const signed = await signer.sign(MESSAGE, domain);
      assert.match(signed.toString('latin1'), /^DKIM-Signature: /);
      assert.ok(signed.subarray(signed.length - MESSAGE.length).equals(MESSAGE), 'the message follows the signature unchanged');

      const [result, ...more] = await verify(signed);
      assert.equal(more.length, 0);
      assert.equal(result?.status.result, 'pass', result?.status.comment);
      assert.equal(result?.signingDomain, domain);
      assert.equal(result?.selector, SELECTOR);
      assert.equal(result?.algo, `${algorithm}-sha256`);
      assert.equal(result?.format, 'relaxed/relaxed');
    });
  }

  test('a body changed after signing fails verification', async () => {
    const domain = 'tamper.sender.test';
    provision(domain, 'ed25519');
    const signed = await new DkimSigner({ keysDir, selector: SELECTOR, logger }).sign(MESSAGE, domain);
    const tampered = Buffer.from(signed.toString('latin1').replace('figures are attached', 'figures are wrong'), 'latin1');
    const [result] = await verify(tampered);
    assert.equal(result?.status.result, 'neutral');
    assert.match(result?.status.comment ?? '', /body hash/);
  });

  test('relaxed canonicalization survives a relay refolding whitespace in headers', async () => {
    const domain = 'relaxed.sender.test';
    provision(domain, 'rsa');
    const signed = await new DkimSigner({ keysDir, selector: SELECTOR, logger }).sign(MESSAGE, domain);
    const refolded = Buffer.from(signed.toString('latin1').replace('Subject: quarterly   figures', 'Subject: quarterly\r\n figures'), 'latin1');
    const [result] = await verify(refolded);
    assert.equal(result?.status.result, 'pass', result?.status.comment);
  });

  test('a domain without a key is sent unchanged', async () => {
    const signer = new DkimSigner({ keysDir, selector: SELECTOR, logger });
    const out = await signer.sign(MESSAGE, 'unkeyed.test');
    assert.equal(out, MESSAGE);
  });

  test('the sender domain is normalized before the key is looked up', async () => {
    provision('mixed.sender.test', 'ed25519');
    const signed = await new DkimSigner({ keysDir, selector: SELECTOR, logger }).sign(MESSAGE, 'Mixed.Sender.TEST.');
    const [result] = await verify(signed);
    assert.equal(result?.status.result, 'pass', result?.status.comment);
    assert.equal(result?.signingDomain, 'mixed.sender.test');
  });

  test('a replaced key file is picked up without a new signer', async () => {
    const domain = 'rotated.sender.test';
    const signer = new DkimSigner({ keysDir, selector: SELECTOR, logger, recheckMs: 0 });
    provision(domain, 'rsa');
    assert.equal((await verify(await signer.sign(MESSAGE, domain)))[0]?.status.result, 'pass');
    // Same name, new key: the cache must notice the file changed (mtime) and re-read it.
    await new Promise((resolve) => setTimeout(resolve, 20));
    provision(domain, 'ed25519');
    const [result] = await verify(await signer.sign(MESSAGE, domain));
    assert.equal(result?.status.result, 'pass', result?.status.comment);
    assert.equal(result?.algo, 'ed25519-sha256');
  });

  test('a key file is looked at again only once the recheck interval has passed', async () => {
    const domain = 'late.sender.test';
    const signer = new DkimSigner({ keysDir, selector: SELECTOR, logger, recheckMs: 200 });
    assert.equal(await signer.sign(MESSAGE, domain), MESSAGE, 'no key yet');
    provision(domain, 'ed25519');
    assert.equal(await signer.sign(MESSAGE, domain), MESSAGE, 'the answer "no key" stands within the interval');
    await new Promise((resolve) => setTimeout(resolve, 250));
    const [result] = await verify(await signer.sign(MESSAGE, domain));
    assert.equal(result?.status.result, 'pass', result?.status.comment);
  });

  test('an unusable key file sends the message unsigned instead of throwing', async () => {
    const domain = 'broken.sender.test';
    writeFileSync(dkimKeyPath(keysDir, domain, SELECTOR), 'not a key', { mode: 0o600 });
    const out = await new DkimSigner({ keysDir, selector: SELECTOR, logger }).sign(MESSAGE, domain);
    assert.equal(out, MESSAGE);
  });
});

describe('dkimRecord', () => {
  test('an Ed25519 record carries the bare 32-octet key (RFC 8463)', () => {
    const key = parseDkimKey(generateDkimPrivateKey('ed25519'), 'example.test', 'sel');
    const record = dkimRecord(key);
    assert.equal(record.name, 'sel._domainkey.example.test');
    assert.equal(record.strings.length, 1);
    const p = /^v=DKIM1; k=ed25519; p=([A-Za-z0-9+/=]+)$/.exec(record.strings[0] ?? '');
    assert.ok(p, record.strings[0]);
    assert.equal(Buffer.from(p[1] ?? '', 'base64').length, 32);
    assert.match(formatDkimRecord(record), /^sel\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=ed25519; p=[^"]+"$/);
  });

  test('an RSA 2048 record is split into strings of at most 255 octets', () => {
    const key = parseDkimKey(generateDkimPrivateKey('rsa'), 'example.test', 'sel');
    const record = dkimRecord(key);
    assert.ok(record.strings.length >= 2);
    for (const s of record.strings) assert.ok(s.length <= 255);
    assert.match(record.strings.join(''), /^v=DKIM1; k=rsa; p=MII/);
    assert.match(formatDkimRecord(record), /^sel\._domainkey\.example\.test\. IN TXT "[^"]{255}" "/);
  });

  test('key paths cannot leave the keys directory', () => {
    assert.throws(() => dkimKeyPath('/keys', '../etc', 'postern'), /not a valid domain/);
    assert.equal(dkimKeyPath('/keys', 'Example.TEST', 'postern'), '/keys/example.test.postern.key');
  });
});
