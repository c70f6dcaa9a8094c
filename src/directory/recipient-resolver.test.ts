import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { MAX_ALIAS_DEPTH, RecipientResolver } from './recipient-resolver.js';

let dir: string;
let store: Store;
let resolver: RecipientResolver;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-resolver-'));
  store = openSqliteStore(join(dir, 'postern.db'));
  await store.addDomain('local.test');
  await store.addUser('alice@local.test', { passwordHash: '$scrypt$test' });
  await store.addAlias('a@local.test', 'b@local.test');
  await store.addAlias('b@local.test', 'c@local.test');
  await store.addAlias('c@local.test', 'a@local.test');
  // From d1, MAX_ALIAS_DEPTH aliases lead to alice; from d0, one more.
  for (let i = 0; i < MAX_ALIAS_DEPTH; i++) await store.addAlias(`d${i}@local.test`, `d${i + 1}@local.test`);
  await store.addAlias(`d${MAX_ALIAS_DEPTH}@local.test`, 'alice@local.test');
  await store.addAlias('fwd@local.test', 'alice@local.test');
  await store.addAlias('fwd@local.test', '"Joe Q"@Remote.Test');
  await store.addAlias('fwd@local.test', 'ghost@local.test');
  resolver = new RecipientResolver(store, { recipientDelimiter: '+', postmaster: '', hostname: 'MX.Example.Test.' });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('RecipientResolver', () => {
  test('a cycle is reported as a loop with the chain that closed it', async () => {
    const r = await resolver.resolveLocal('b@local.test');
    assert.deepEqual(r, { kind: 'loop', chain: ['b@local.test', 'c@local.test', 'a@local.test', 'b@local.test'] });
  });

  test('MAX_ALIAS_DEPTH aliases in a row resolve, one more is too deep', async () => {
    assert.equal((await resolver.resolveLocal('d0@local.test')).kind, 'too-deep');
    assert.deepEqual(await resolver.resolveLocal('d1@local.test'), {
      kind: 'resolved',
      mailboxes: ['alice@local.test'],
      remote: [],
      dangling: [],
    });
  });

  test('remote and dangling targets are reported beside the mailboxes', async () => {
    const r = await resolver.resolveLocal('fwd@local.test');
    assert.ok(r.kind === 'resolved', JSON.stringify(r));
    assert.deepEqual(r.mailboxes, ['alice@local.test']);
    assert.equal(r.remote.length, 1);
    assert.match(r.remote[0] as string, /@remote\.test$/);
    assert.equal(r.dangling.length, 1);
  });

  test('postmaster defaults to postmaster@<normalized hostname>', async () => {
    assert.deepEqual(await resolver.resolvePostmaster(), {
      kind: 'resolved',
      mailboxes: ['postmaster@mx.example.test'],
      remote: [],
      dangling: [],
    });
  });
});
