import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { SenderIdentityPolicy } from './sender-identity.js';

let dir: string;
let store: Store;
let policy: SenderIdentityPolicy;

const ALICE = 'alice@ours.test';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-sender-'));
  store = openSqliteStore(join(dir, 'postern.db'));
  await store.addDomain('ours.test');
  await store.addDomain('other.test');
  for (const u of [ALICE, 'bob@ours.test', 'alice+x@ours.test', 'relaxed@ours.test']) {
    await store.addUser(u, { passwordHash: '$scrypt$test' });
  }
  await store.addAlias('sales@ours.test', 'bob@ours.test');
  await store.addAlias('sales@ours.test', ALICE);
  await store.addAlias('team@ours.test', 'sales@ours.test'); // alias of an alias
  await store.addAlias('tagged@ours.test', 'alice+work@ours.test'); // a target with a plus tag
  await store.addAlias('bobs@ours.test', 'bob@ours.test');
  await store.addAlias('@ours.test', ALICE); // a catch-all owns nothing
  await store.addAlias('loop1@ours.test', 'loop2@ours.test');
  await store.addAlias('loop2@ours.test', 'loop1@ours.test');
  await store.addSenderGrant(ALICE, 'newsletter@other.test');
  await store.addSenderGrant(ALICE, '@partner.test');
  await store.setUserLimits('relaxed@ours.test', { senderPolicy: 'any' });
  policy = new SenderIdentityPolicy(store, { defaultPolicy: 'strict', recipientDelimiter: '+' });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function message(header: string): Buffer {
  return Buffer.from(`${header}\r\nSubject: test\r\n\r\nFrom: evil@elsewhere.test\r\n`);
}

describe('SenderIdentityPolicy.checkEnvelopeSender', () => {
  const allowed: [string, string][] = [
    ['own address', ALICE],
    ['own address in another case', 'Alice@OURS.test'],
    ['quoted own address', '"alice"@ours.test'],
    ['plus variant', 'alice+lists@ours.test'],
    ['an alias that includes the account', 'sales@ours.test'],
    ['an alias of that alias', 'team@ours.test'],
    ['an alias whose target is a plus variant', 'tagged@ours.test'],
    ['a plus variant of an alias', 'sales+q3@ours.test'],
    ['an explicit grant', 'newsletter@other.test'],
    ['a plus variant of a grant', 'newsletter+x@other.test'],
    ['a domain grant', 'anyone@partner.test'],
  ];
  for (const [what, sender] of allowed) {
    test(`allowed: ${what}`, async () => {
      assert.equal(await policy.checkEnvelopeSender(ALICE, sender), undefined);
    });
  }

  const refused: [string, string][] = [
    ["someone else's address", 'bob@ours.test'],
    ["a plus variant of someone else's address", 'bob+x@ours.test'],
    ["an alias for someone else", 'bobs@ours.test'],
    ['an address only the catch-all would take', 'ceo@ours.test'],
    ['a user whose name merely starts like a plus variant', 'alice+x@ours.test'],
    ['an alias loop', 'loop1@ours.test'],
    ['another address of a granted domain', 'other@other.test'],
    ['a subdomain of a granted domain', 'x@sub.partner.test'],
    ['a remote address', 'alice@elsewhere.test'],
    ['an address literal', 'alice@[192.0.2.1]'],
  ];
  for (const [what, sender] of refused) {
    test(`refused: ${what}`, async () => {
      const r = await policy.checkEnvelopeSender(ALICE, sender);
      assert.deepEqual(r && { code: r.code, enhanced: r.enhanced }, { code: 553, enhanced: '5.7.1' });
      assert.equal(r?.lines[0], `<${sender}>: Sender address not owned by user ${ALICE}`);
    });
  }

  test('the null sender is refused under strict', async () => {
    const r = await policy.checkEnvelopeSender(ALICE, '');
    assert.equal(r?.code, 553);
    assert.equal(r?.lines[0], `<>: Sender address not owned by user ${ALICE}`);
  });

  test('sender_policy "any" (per user) allows anything, the null sender too', async () => {
    assert.equal(await policy.checkEnvelopeSender('relaxed@ours.test', 'bob@ours.test'), undefined);
    assert.equal(await policy.checkEnvelopeSender('relaxed@ours.test', ''), undefined);
  });

  test('default policy "any", overridden to strict per user', async () => {
    const lax = new SenderIdentityPolicy(store, { defaultPolicy: 'any', recipientDelimiter: '+' });
    assert.equal(await lax.checkEnvelopeSender(ALICE, 'bob@ours.test'), undefined);
    await store.setUserLimits(ALICE, { senderPolicy: 'strict' });
    try {
      assert.equal((await lax.checkEnvelopeSender(ALICE, 'bob@ours.test'))?.code, 553);
    } finally {
      await store.setUserLimits(ALICE, { senderPolicy: null });
    }
  });

  test('with plus-addressing off, a plus variant is another address', async () => {
    const noPlus = new SenderIdentityPolicy(store, { defaultPolicy: 'strict', recipientDelimiter: '' });
    assert.equal((await noPlus.checkEnvelopeSender(ALICE, 'alice+lists@ours.test'))?.code, 553);
  });

  test('a revoked grant no longer counts', async () => {
    await store.addSenderGrant(ALICE, 'temp@other.test');
    assert.equal(await policy.checkEnvelopeSender(ALICE, 'temp@other.test'), undefined);
    assert.equal(await store.removeSenderGrant(ALICE, 'temp@other.test'), true);
    assert.equal((await policy.checkEnvelopeSender(ALICE, 'temp@other.test'))?.code, 553);
  });
});

describe('SenderIdentityPolicy.checkHeaderFrom', () => {
  test('own mailboxes (display names, alias, grant) pass; a From in the body is not read', async () => {
    const m = message('From: "Alice" <alice@ours.test>, Sales <sales@ours.test>, x@partner.test');
    assert.equal(await policy.checkHeaderFrom(ALICE, m), undefined);
  });

  test('several mailboxes, one of them foreign: refused, naming the foreign one', async () => {
    const r = await policy.checkHeaderFrom(ALICE, message('From: alice@ours.test, "Bob" <bob@ours.test>'));
    assert.equal(r?.code, 553);
    assert.equal(r?.enhanced, '5.7.1');
    assert.equal(r?.lines[0], `<bob@ours.test>: Sender address not owned by user ${ALICE}`);
  });

  test('a display name that looks like an own address does not hide a foreign one', async () => {
    const r = await policy.checkHeaderFrom(ALICE, message('From: "alice@ours.test" <bob@ours.test>'));
    assert.equal(r?.code, 553);
  });

  test('the Sender header is checked too', async () => {
    const r = await policy.checkHeaderFrom(ALICE, message('From: alice@ours.test\r\nSender: bob@ours.test'));
    assert.equal(r?.lines[0], `<bob@ours.test>: Sender address not owned by user ${ALICE}`);
  });

  test('no From, two From headers, an unreadable From: 550 5.6.0', async () => {
    for (const m of [
      Buffer.from('Subject: x\r\n\r\nFrom: alice@ours.test\r\n'),
      message('From: alice@ours.test\r\nFrom: bob@ours.test'),
      message('From: alice@ours.test <bob@ours.test>'),
    ]) {
      const r = await policy.checkHeaderFrom(ALICE, m);
      assert.deepEqual(r && { code: r.code, enhanced: r.enhanced }, { code: 550, enhanced: '5.6.0' });
    }
  });

  test('sender_policy "any" skips the header check', async () => {
    assert.equal(await policy.checkHeaderFrom('relaxed@ours.test', message('From: bob@ours.test')), undefined);
  });
});
