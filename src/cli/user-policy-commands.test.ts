// Runs the real `bin/postern.js` for the user limits/grant/revoke/grants commands.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliHarness } from '../../test/support/cli-harness.js';
import { openSqliteStore } from '../store/sqlite-store.js';

const ALICE = 'alice@ours.test';

let dir: string;
let config: string;

const { succeeds, fails } = cliHarness(() => ({ config, dir }));

/** Reads the store as the server would, after the CLI has exited. */
async function inStore<T>(use: (store: ReturnType<typeof openSqliteStore>) => Promise<T>): Promise<T> {
  const store = openSqliteStore(join(dir, 'data', 'postern.db'));
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-cli-policy-'));
  // As root the CLI becomes "nobody", which must be able to enter the directory (mkdtemp: 0700).
  chmodSync(dir, 0o755);
  config = join(dir, 'postern.toml');
  writeFileSync(config, 'data_dir = "data"\n[submission]\nmax_recipients_per_day = 500\n[log]\nlevel = "warn"\n');
  mkdirSync(join(dir, 'data'));
  await inStore(async (store) => {
    await store.addDomain('ours.test');
    await store.addUser(ALICE, { passwordHash: '$scrypt$test' });
  });
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('postern user limits', () => {
  test('without options: the limits in force, from the config', async () => {
    assert.equal(
      await succeeds('user', 'limits', 'Alice@OURS.test'),
      [
        ALICE,
        '  messages per hour:  200 (default)',
        '  recipients per day: 500 (default)',
        '  sender policy:      strict (default)',
        '',
      ].join('\n'),
    );
  });

  test('set overrides, show them as JSON, clear one with "default"', async () => {
    const out = await succeeds('user', 'limits', ALICE, '--messages-per-hour', '0', '--sender-policy', 'any');
    assert.match(out, /messages per hour: {2}unlimited\n/);
    assert.match(out, /sender policy: {6}any\n/);
    assert.deepEqual(await inStore((s) => s.getUserLimits(ALICE)), { maxMessagesPerHour: 0, senderPolicy: 'any' });

    await succeeds('user', 'limits', ALICE, '--recipients-per-day', '20', '--sender-policy', 'default');
    const json = JSON.parse(await succeeds('user', 'limits', ALICE, '--json'));
    assert.deepEqual(json, {
      account: ALICE,
      messagesPerHour: 0,
      recipientsPerDay: 20,
      senderPolicy: 'strict',
      overrides: ['maxMessagesPerHour', 'maxRecipientsPerDay'],
    });

    await succeeds('user', 'limits', ALICE, '--messages-per-hour', 'default', '--recipients-per-day', 'default');
    assert.deepEqual(await inStore((s) => s.getUserLimits(ALICE)), {});
  });

  test('errors: bad number, bad policy, unknown user, bad address', async () => {
    await fails(/whole number/, 'user', 'limits', ALICE, '--messages-per-hour', '-1');
    await fails(/whole number/, 'user', 'limits', ALICE, '--recipients-per-day', 'lots');
    await fails(/strict, any, default/, 'user', 'limits', ALICE, '--sender-policy', 'loose');
    await fails(/user "ghost@ours.test" does not exist/, 'user', 'limits', 'ghost@ours.test');
    await fails(/user "ghost@ours.test" does not exist/, 'user', 'limits', 'ghost@ours.test', '--messages-per-hour', '5');
    await fails(/"nobody" is not a valid address/, 'user', 'limits', 'nobody');
  });
});

describe('postern user grant / grants / revoke', () => {
  test('grant an address and a domain, list them, revoke one', async () => {
    assert.equal(await succeeds('user', 'grant', ALICE, 'News@Other.TEST'), `${ALICE} may now send as news@other.test\n`);
    assert.equal(await succeeds('user', 'grant', ALICE, '@Partner.test'), `${ALICE} may now send as @partner.test\n`);
    assert.equal(await succeeds('user', 'grants', ALICE), '@partner.test\nnews@other.test\n');
    assert.deepEqual(JSON.parse(await succeeds('user', 'grants', ALICE, '--json')), ['@partner.test', 'news@other.test']);
    assert.equal(await succeeds('user', 'revoke', ALICE, 'news@other.test'), `${ALICE} may no longer send as news@other.test\n`);
    assert.deepEqual(await inStore((s) => s.listSenderGrants(ALICE)), ['@partner.test']);
  });

  test('errors: duplicate grant, revoking what was not granted, bad sender, unknown user', async () => {
    await succeeds('user', 'grant', ALICE, 'dup@other.test');
    await fails(/already send as "dup@other.test"/, 'user', 'grant', ALICE, 'dup@other.test');
    await fails(/has no grant for "never@other.test"/, 'user', 'revoke', ALICE, 'never@other.test');
    await fails(/"not an address" is not a valid sender/, 'user', 'grant', ALICE, 'not an address');
    await fails(/user "ghost@ours.test" does not exist/, 'user', 'grant', 'ghost@ours.test', 'x@other.test');
    await fails(/user "ghost@ours.test" does not exist/, 'user', 'grants', 'ghost@ours.test');
  });
});
