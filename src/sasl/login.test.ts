import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { LoginMechanism } from './login.js';
import type { SaslContext } from './mechanism.js';
import { lastStep, MemoryCredentials, runExchange } from '../../test/support/test-credentials.js';

const TLS: SaslContext = { secure: true, hostname: 'mx.example.test' };
let login: LoginMechanism;
before(async () => {
  login = new LoginMechanism(await MemoryCredentials.withPasswords({ 'alice@example.test': 'pencil' }));
});

describe('LOGIN', () => {
  test('offered only inside TLS', () => {
    assert.equal(login.available(TLS), true);
    assert.equal(login.available({ secure: false, hostname: 'h' }), false);
  });

  test('"Username:" then "Password:"', async () => {
    const steps = await runExchange(login.begin(TLS), undefined, 'alice@example.test', 'pencil');
    assert.deepEqual(steps, [
      { kind: 'challenge', data: Buffer.from('Username:') },
      { kind: 'challenge', data: Buffer.from('Password:') },
      { kind: 'success', identity: 'alice@example.test' },
    ]);
  });

  test('the initial response is the user name', async () => {
    const steps = await runExchange(login.begin(TLS), 'ALICE@example.test', 'pencil');
    assert.deepEqual(steps, [
      { kind: 'challenge', data: Buffer.from('Password:') },
      { kind: 'success', identity: 'alice@example.test' },
    ]);
  });

  test('wrong password and unknown account fail the same way, after the same prompts', async () => {
    const wrong = await runExchange(login.begin(TLS), undefined, 'alice@example.test', 'pencil2');
    const unknown = await runExchange(login.begin(TLS), undefined, 'zed@example.test', 'pencil');
    assert.deepEqual(wrong.slice(0, 2), unknown.slice(0, 2));
    for (const step of [lastStep(wrong), lastStep(unknown)]) {
      assert.equal(step.kind === 'failure' && step.reason, 'bad-credentials');
    }
  });

  test('the password followed by NUL octets is a wrong password', async () => {
    const step = lastStep(await runExchange(login.begin(TLS), 'alice@example.test', Buffer.from('pencil\0')));
    assert.equal(step.kind === 'failure' && step.reason, 'bad-credentials');
  });

  test('an empty or non-UTF-8 user name, and extra responses, are malformed', async () => {
    assert.equal(lastStep(await runExchange(login.begin(TLS), '')).kind, 'failure');
    const bad = lastStep(await runExchange(login.begin(TLS), Buffer.from([0xc3, 0x28])));
    assert.equal(bad.kind === 'failure' && bad.reason, 'malformed');
    const extra = lastStep(await runExchange(login.begin(TLS), 'alice@example.test', 'pencil', 'more'));
    assert.equal(extra.kind === 'failure' && extra.reason, 'malformed');
  });
});
