import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import type { SaslContext } from './mechanism.js';
import { PlainMechanism } from './plain.js';
import { lastStep, MemoryCredentials, runExchange } from '../../test/support/test-credentials.js';

const TLS: SaslContext = { secure: true, hostname: 'mx.example.test' };
let plain: PlainMechanism;
before(async () => {
  plain = new PlainMechanism(await MemoryCredentials.withPasswords({ 'alice@example.test': 'pencil' }));
});

function message(authzid: string, authcid: string, password: string): string {
  return `${authzid}\0${authcid}\0${password}`;
}

describe('PLAIN (RFC 4616)', () => {
  test('offered only inside TLS', () => {
    assert.equal(plain.available(TLS), true);
    assert.equal(plain.available({ secure: false, hostname: 'h' }), false);
  });

  test('the right password in the initial response; the identity is the normalized account', async () => {
    const steps = await runExchange(plain.begin(TLS), message('', 'Alice@Example.TEST', 'pencil'));
    assert.deepEqual(steps, [{ kind: 'success', identity: 'alice@example.test' }]);
  });

  test('without an initial response: an empty challenge, then the message', async () => {
    const steps = await runExchange(plain.begin(TLS), undefined, message('', 'alice@example.test', 'pencil'));
    assert.deepEqual(steps, [
      { kind: 'challenge', data: Buffer.alloc(0) },
      { kind: 'success', identity: 'alice@example.test' },
    ]);
  });

  test('authzid: the account itself is fine, another account is refused', async () => {
    const same = await runExchange(plain.begin(TLS), message('alice@EXAMPLE.test', 'alice@example.test', 'pencil'));
    assert.equal(lastStep(same).kind, 'success');
    const other = lastStep(await runExchange(plain.begin(TLS), message('bob@example.test', 'alice@example.test', 'pencil')));
    assert.equal(other.kind === 'failure' && other.reason, 'bad-credentials');
  });

  test('wrong password and unknown account fail the same way', async () => {
    const wrong = lastStep(await runExchange(plain.begin(TLS), message('', 'alice@example.test', 'pencil2')));
    const unknown = lastStep(await runExchange(plain.begin(TLS), message('', 'zed@example.test', 'pencil')));
    for (const step of [wrong, unknown]) {
      assert.equal(step.kind, 'failure');
      assert.equal(step.kind === 'failure' && step.reason, 'bad-credentials');
    }
    assert.equal(wrong.kind === 'failure' && wrong.account, 'alice@example.test');
    assert.equal(unknown.kind === 'failure' && unknown.account, 'zed@example.test');
  });

  test('malformed messages', async () => {
    for (const bad of [
      Buffer.from('alice@example.test pencil'),
      Buffer.from('\0alice@example.test'),
      Buffer.from('\0alice@example.test\0pencil\0'),
      Buffer.from('\0\0pencil'),
      Buffer.from('\0alice@example.test\0'),
      Buffer.from([0, 0xff, 0xfe, 0, 0x41]),
      Buffer.from(`\0${'a'.repeat(256)}\0pencil`),
    ]) {
      const step = lastStep(await runExchange(plain.begin(TLS), bad));
      assert.equal(step.kind === 'failure' && step.reason, 'malformed', JSON.stringify(bad.toString('latin1')));
    }
  });

  test('a response after the end is refused', async () => {
    const exchange = plain.begin(TLS);
    await exchange.start(Buffer.from(message('', 'alice@example.test', 'pencil')));
    const again = await exchange.step(Buffer.from(message('', 'alice@example.test', 'pencil')));
    assert.equal(again.kind, 'failure');
  });
});
