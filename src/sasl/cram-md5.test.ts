import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { deriveCramMd5Secret } from '../auth/cram-md5-secret.js';
import { CramMd5Mechanism } from './cram-md5.js';
import type { SaslContext } from './mechanism.js';
import { lastStep, MemoryCredentials, runExchange } from '../../test/support/test-credentials.js';

const RFC_CHALLENGE = '<1896.697170952@postoffice.reston.mci.net>';
const CTX: SaslContext = { secure: false, hostname: 'mx.example.test' };
let credentials: MemoryCredentials;
before(async () => {
  credentials = await MemoryCredentials.withPasswords({ 'alice@example.test': 'pencil' });
  credentials.add({ account: 'tim', passwordHash: '$scrypt$unused', cramMd5: deriveCramMd5Secret('tanstaaftanstaaf') });
  credentials.add({ account: 'old@example.test', passwordHash: '$scrypt$unused' });
});

function respond(user: string, password: string, challenge: Buffer): string {
  return `${user} ${createHmac('md5', password).update(challenge).digest('hex')}`;
}

describe('CRAM-MD5 (RFC 2195)', () => {
  test('the RFC example: tim / tanstaaftanstaaf', async () => {
    const mech = new CramMd5Mechanism(credentials, { challenge: () => RFC_CHALLENGE });
    const steps = await runExchange(mech.begin(CTX), undefined, 'tim b913a602c7eda7a495b4e6e7334d3890');
    assert.deepEqual(steps, [
      { kind: 'challenge', data: Buffer.from(RFC_CHALLENGE) },
      { kind: 'success', identity: 'tim' },
    ]);
  });

  test('fresh challenges shaped like a msg-id naming our host', async () => {
    const mech = new CramMd5Mechanism(credentials);
    const a = await mech.begin(CTX).start(undefined);
    const b = await mech.begin(CTX).start(undefined);
    assert.ok(a.kind === 'challenge' && b.kind === 'challenge');
    assert.match(a.data.toString(), /^<\d+\.\d+@mx\.example\.test>$/);
    assert.notDeepEqual(a.data, b.data);
  });

  test('a stored account answers its own challenge', async () => {
    const exchange = new CramMd5Mechanism(credentials).begin(CTX);
    const challenge = await exchange.start(undefined);
    assert.ok(challenge.kind === 'challenge');
    assert.deepEqual(await exchange.step(Buffer.from(respond('Alice@example.test', 'pencil', challenge.data))), {
      kind: 'success',
      identity: 'alice@example.test',
    });
  });

  test('wrong password, unknown account and an account without the secret fail alike', async () => {
    const mech = new CramMd5Mechanism(credentials, { challenge: () => RFC_CHALLENGE });
    const c = Buffer.from(RFC_CHALLENGE);
    for (const response of [
      respond('alice@example.test', 'pencil2', c),
      respond('zed@example.test', 'pencil', c),
      respond('old@example.test', 'pencil', c),
    ]) {
      const step = lastStep(await runExchange(mech.begin(CTX), undefined, response));
      assert.equal(step.kind === 'failure' && step.reason, 'bad-credentials', response);
    }
  });

  test('initial responses and malformed answers are refused', async () => {
    const mech = new CramMd5Mechanism(credentials);
    const early = lastStep(await runExchange(mech.begin(CTX), 'tim 00'));
    assert.equal(early.kind === 'failure' && early.reason, 'malformed');
    for (const bad of ['tim', 'tim xyz', 'b913a602c7eda7a495b4e6e7334d3890', 'tim  b913a602c7eda7a495b4e6e7334d389']) {
      const step = lastStep(await runExchange(mech.begin(CTX), undefined, bad));
      assert.equal(step.kind === 'failure' && step.reason, 'malformed', bad);
    }
  });
});
