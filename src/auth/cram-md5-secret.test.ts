import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { cramMd5Digest, deriveCramMd5Secret } from './cram-md5-secret.js';

describe('CRAM-MD5 key state', () => {
  test('RFC 2195 example: tim / tanstaaftanstaaf', () => {
    const secret = deriveCramMd5Secret('tanstaaftanstaaf');
    const digest = cramMd5Digest(secret, Buffer.from('<1896.697170952@postoffice.reston.mci.net>'));
    assert.equal(digest.toString('hex'), 'b913a602c7eda7a495b4e6e7334d3890');
  });

  test('is 32 bytes and does not contain the password', () => {
    const secret = deriveCramMd5Secret('hunter2hunter2');
    assert.equal(secret.length, 32);
    assert.equal(secret.includes(Buffer.from('hunter2')), false);
  });

  test('agrees with node:crypto HMAC-MD5 for any key and message length', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), fc.uint8Array({ maxLength: 300 }), (password, message) => {
        const expected = createHmac('md5', Buffer.from(password, 'utf8')).update(message).digest();
        assert.deepEqual(cramMd5Digest(deriveCramMd5Secret(password), Buffer.from(message)), expected);
      }),
      { numRuns: 300 },
    );
    // Block-boundary lengths explicitly: 55, 56, 63, 64 bytes of message after the key block.
    for (const n of [0, 55, 56, 57, 63, 64, 65, 119, 120, 128]) {
      const message = randomBytes(n);
      assert.deepEqual(
        cramMd5Digest(deriveCramMd5Secret('k'), message),
        createHmac('md5', 'k').update(message).digest(),
        `length ${n}`,
      );
    }
  });
});
