import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cramMd5Digest } from './cram-md5-secret.js';
import { createHmac } from 'node:crypto';
import { verifyPassword } from './password.js';
import { deriveScramSecret, UnpreparablePasswordError } from './scram-secrets.js';
import { computeUserSecrets, usableMechanisms } from './user-secrets.js';

describe('computeUserSecrets', () => {
  test('hash, both SCRAM secrets, no CRAM-MD5 unless asked', async () => {
    const secrets = await computeUserSecrets('pencil', { cramMd5: false });
    assert.equal(await verifyPassword('pencil', secrets.passwordHash), true);
    for (const [hash, secret] of [['sha1', secrets.scramSha1], ['sha256', secrets.scramSha256]] as const) {
      assert.ok(secret);
      assert.equal(secret.iterations, 4096);
      assert.deepEqual(deriveScramSecret('pencil', hash, secret.iterations, secret.salt), secret);
    }
    assert.equal(secrets.cramMd5, undefined);
    assert.deepEqual(usableMechanisms(secrets), [
      'PLAIN', 'LOGIN', 'SCRAM-SHA-1', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS',
    ]);
  });

  test('CRAM-MD5 secret when enabled; iterations never below 4096', async () => {
    const secrets = await computeUserSecrets('pencil', { cramMd5: true, scramIterations: 10 });
    assert.equal(secrets.scramSha256?.iterations, 4096);
    assert.ok(secrets.cramMd5);
    assert.deepEqual(cramMd5Digest(secrets.cramMd5, Buffer.from('<1.2@h>')), createHmac('md5', 'pencil').update('<1.2@h>').digest());
    assert.ok(usableMechanisms(secrets).includes('CRAM-MD5'));
    const more = await computeUserSecrets('pencil', { cramMd5: false, scramIterations: 5000 });
    assert.equal(more.scramSha1?.iterations, 5000);
  });

  test('a password SCRAM cannot prepare is refused', async () => {
    await assert.rejects(computeUserSecrets('tab\there', { cramMd5: false }), UnpreparablePasswordError);
  });

  test('an account from before SCRAM offers PLAIN and LOGIN only', () => {
    assert.deepEqual(usableMechanisms({ passwordHash: '$scrypt$x' }), ['PLAIN', 'LOGIN']);
  });
});
