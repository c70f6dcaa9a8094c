import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword, verifyPassword } from './password.js';

describe('password hashing', () => {
  test('produces a PHC scrypt string with the agreed parameters', async () => {
    const hash = await hashPassword('correct horse');
    assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  });

  test('verifies the right password and rejects a wrong one', async () => {
    const hash = await hashPassword('correct horse');
    assert.equal(await verifyPassword('correct horse', hash), true);
    assert.equal(await verifyPassword('correct horsf', hash), false);
    assert.equal(await verifyPassword('', hash), false);
  });

  test('a password with NUL octets never matches, though HMAC would pad the real one with them', async () => {
    const hash = await hashPassword('correct horse');
    for (const padded of ['correct horse\0', 'correct horse\0\0\0', '\0']) {
      assert.equal(await verifyPassword(padded, hash), false, JSON.stringify(padded));
    }
  });

  test('salts every hash', async () => {
    const [a, b] = await Promise.all([hashPassword('same'), hashPassword('same')]);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword('same', a), true);
    assert.equal(await verifyPassword('same', b), true);
  });

  test('matches a password composed differently in Unicode (NFC)', async () => {
    const hash = await hashPassword('caf\u00e9');
    assert.equal(await verifyPassword('cafe\u0301', hash), true);
  });

  test('verifies hashes made with other parameters, taken from the string', async () => {
    // Hash of "secret" with ln=4,r=8,p=1 and the salt "saltsaltsaltsalt", computed independently below.
    const { scryptSync } = await import('node:crypto');
    const salt = Buffer.from('saltsaltsaltsalt');
    const key = scryptSync('secret', salt, 32, { N: 16, r: 8, p: 1 });
    const hash = `$scrypt$ln=4,r=8,p=1$${salt.toString('base64').replace(/=+$/, '')}$${key.toString('base64').replace(/=+$/, '')}`;
    assert.equal(await verifyPassword('secret', hash), true);
    assert.equal(await verifyPassword('Secret', hash), false);
  });

  test('rejects malformed or hostile hashes without throwing', async () => {
    for (const bad of [
      '',
      'plaintext',
      '$2b$10$abcdefghijklmnopqrstuv',
      '$scrypt$ln=15,r=8,p=1$c2FsdA$',
      '$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      '$scrypt$ln=0,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    ]) {
      assert.equal(await verifyPassword('x', bad), false, bad);
    }
  });
});
