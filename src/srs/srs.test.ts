import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isSrsLocalPart, MAX_AGE_DAYS, SrsCodec } from './srs.js';
import { loadSrsSecret, SRS_SECRET_FILE } from './srs-secret.js';

const DAY = 24 * 60 * 60 * 1000;
const SECRET = Buffer.from('a secret of at least sixteen bytes');
const START = Date.UTC(2026, 11, 1, 12);

function codecAt(time: { now: number }, secret = SECRET): SrsCodec {
  return new SrsCodec(secret, () => time.now);
}

function localPart(address: string): string {
  return address.slice(0, address.lastIndexOf('@'));
}

describe('SRS0', () => {
  test('the form: SRS0=hash=day=domain=local at the forwarding domain', () => {
    const srs = codecAt({ now: START }).forward('alice@example.org', 'forwarder.test');
    assert.match(srs, /^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=example\.org=alice@forwarder\.test$/);
    // Days since the epoch mod 1024, in base32: 20788 % 1024 = 308 = 9 * 32 + 20 -> "JU".
    assert.equal(Math.floor(START / DAY) % 1024, 308);
    assert.equal(srs.split('=')[2], 'JU');
  });

  test('reverses to the original sender, also when the receiver changed the case', () => {
    const time = { now: START };
    const srs = codecAt(time).forward('Alice.B=C@Example.org', 'forwarder.test');
    assert.deepEqual(codecAt(time).reverse(localPart(srs)), { kind: 'valid', address: 'Alice.B=C@Example.org' });
    assert.equal(codecAt(time).reverse(localPart(srs).toLowerCase()).kind, 'valid');
    assert.equal(codecAt(time).reverse(localPart(srs).toUpperCase()).kind, 'valid');
  });

  test('a changed hash, domain, local part or day, or another secret, is forged', () => {
    const time = { now: START };
    const local = localPart(codecAt(time).forward('alice@example.org', 'forwarder.test'));
    const [, hash = '', day = ''] = local.split('=');
    const otherHash = hash.replace(/^./, (c) => (c.toLowerCase() === 'a' ? 'b' : 'a'));
    for (const forged of [
      local.replace(hash, otherHash),
      local.replace('example.org', 'attacker.test'),
      local.replace('=alice', '=mallory'),
      local.replace(`=${day}=`, day === 'AA' ? '=AB=' : '=AA='),
      'SRS0=abcd=AA=example.org=alice',
      'SRS0=abc=JU=example.org=alice',
      'SRS0=abcd=J1=example.org=alice',
      'SRS0=abcd=JU==alice',
    ]) {
      assert.equal(codecAt(time).reverse(forged).kind, 'forged', forged);
    }
    assert.equal(codecAt(time, Buffer.from('another secret, also long enough')).reverse(local).kind, 'forged');
  });

  test(`valid for ${MAX_AGE_DAYS} days, expired after, across the 1024-day wrap`, () => {
    // 1023 days after the epoch's day 0 of a cycle: the next day wraps to "AA".
    const time = { now: (1024 * 30 + 1020) * DAY };
    const local = localPart(codecAt(time).forward('alice@example.org', 'forwarder.test'));
    time.now += MAX_AGE_DAYS * DAY;
    assert.equal(codecAt(time).reverse(local).kind, 'valid');
    time.now += DAY;
    assert.deepEqual(codecAt(time).reverse(local), { kind: 'expired', ageDays: MAX_AGE_DAYS + 1 });
  });

  test('ordinary local parts are not SRS', () => {
    const codec = codecAt({ now: START });
    for (const local of ['alice', 'srs0', 'SRS1=abcd=x.test==abcd=JU=example.org=alice', 'srs0x=a=b=c=d']) {
      assert.equal(codec.reverse(local).kind, 'not-srs', local);
      assert.equal(isSrsLocalPart(local), false, local);
    }
    assert.equal(isSrsLocalPart('srs0+abcd=JU=example.org=alice'), true);
  });

  test('a short secret is refused', () => {
    assert.throws(() => new SrsCodec(Buffer.from('short')), /at least 16 bytes/);
  });
});

describe('the SRS secret file', () => {
  test('made 0600 on first use, the same afterwards; an unusable one is a clear error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-srs-'));
    try {
      const first = loadSrsSecret(dir);
      assert.equal(first.length, 32);
      assert.equal(statSync(join(dir, SRS_SECRET_FILE)).mode & 0o777, 0o600);
      assert.deepEqual(loadSrsSecret(dir), first);
      writeFileSync(join(dir, SRS_SECRET_FILE), '\n');
      assert.throws(() => loadSrsSecret(dir), /holds no usable SRS secret: delete it/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
