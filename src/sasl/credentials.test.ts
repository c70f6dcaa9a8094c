import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeUserSecrets } from '../auth/user-secrets.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { storeCredentials } from './credentials.js';
import { PlainMechanism } from './plain.js';
import { ScramMechanism } from './scram.js';
import { ScramClient } from './scram-client.js';

const dir = mkdtempSync(join(tmpdir(), 'postern-credentials-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('storeCredentials', () => {
  test('reads the secrets `postern user add` stores; mechanisms log in against the real store', async () => {
    const store = openSqliteStore(join(dir, 'postern.db'));
    try {
      await store.addDomain('example.test');
      await store.addUser('alice@example.test', await computeUserSecrets('pencil', { cramMd5: false }));
      const credentials = storeCredentials(store);

      const alice = await credentials.lookup('ALICE@Example.Test');
      assert.equal(alice?.account, 'alice@example.test');
      assert.ok(alice?.scramSha1 && alice.scramSha256);
      assert.equal(alice.cramMd5, undefined);
      assert.equal(await credentials.lookup('bob@example.test'), undefined);
      assert.equal(await credentials.lookup('not an address'), undefined);

      const ctx = { secure: true, hostname: 'mx.example.test' };
      const plain = await new PlainMechanism(credentials).begin(ctx).start(Buffer.from('\0alice@example.test\0pencil'));
      assert.deepEqual(plain, { kind: 'success', identity: 'alice@example.test' });

      const exchange = new ScramMechanism(credentials, { hash: 'sha256', plus: false }).begin(ctx);
      const client = new ScramClient({ hash: 'sha256', username: 'alice@example.test', password: 'pencil' });
      const first = await exchange.start(Buffer.from(client.clientFirst()));
      assert.ok(first.kind === 'challenge');
      const final = await exchange.step(Buffer.from(client.clientFinal(first.data.toString())));
      assert.ok(final.kind === 'challenge');
      client.verifyServerFinal(final.data.toString());
      assert.deepEqual(await exchange.step(Buffer.alloc(0)), { kind: 'success', identity: 'alice@example.test' });
    } finally {
      await store.close();
    }
  });
});
