import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  deriveScramSecret,
  formatScramSecret,
  MIN_SCRAM_ITERATIONS,
  parseScramSecret,
  UnpreparablePasswordError,
} from './scram-secrets.js';
import { saslprep } from './saslprep.js';

describe('SCRAM secrets', () => {
  test('RFC 5802 section 5 (SCRAM-SHA-1, "pencil"): StoredKey and ServerKey from the known salt', () => {
    const secret = deriveScramSecret('pencil', 'sha1', 4096, Buffer.from('QSXCR+Q6sek8bf92', 'base64'));
    // Derived from the RFC's ClientProof and ServerSignature by independent implementations.
    assert.equal(secret.storedKey.toString('base64'), '6dlGYMOdZcOPutkcNY8U2g7vK9Y=');
    assert.equal(secret.serverKey.toString('base64'), 'D+CSWLOshSulAsxiupA+qs2/fTE=');
  });

  test('RFC 7677 section 3 (SCRAM-SHA-256, "pencil")', () => {
    const secret = deriveScramSecret('pencil', 'sha256', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    assert.equal(secret.storedKey.toString('base64'), 'WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=');
    assert.equal(secret.serverKey.toString('base64'), 'wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
  });

  test('random salt, at least 4096 iterations by default', () => {
    const a = deriveScramSecret('x', 'sha256');
    const b = deriveScramSecret('x', 'sha256');
    assert.equal(a.iterations, MIN_SCRAM_ITERATIONS);
    assert.notDeepEqual(a.salt, b.salt);
    assert.notDeepEqual(a.storedKey, b.storedKey);
  });

  test('RFC 5803 text form round-trips and is checked', () => {
    const secret = deriveScramSecret('pencil', 'sha256', 5000);
    const text = formatScramSecret('sha256', secret);
    assert.match(text, /^SCRAM-SHA-256\$5000:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    assert.deepEqual(parseScramSecret('sha256', text), secret);
    assert.equal(parseScramSecret('sha1', text), undefined, 'the other hash');
    for (const bad of ['', 'SCRAM-SHA-256$', 'SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA', text.replace(/:[^:$]+$/, ':AAAA')]) {
      assert.equal(parseScramSecret('sha256', bad), undefined, bad);
    }
  });

  test('SASLprep subset: spaces and invisible characters mapped, NFKC, controls refused', () => {
    assert.equal(saslprep('I\u00ADX'), 'IX');
    assert.equal(saslprep('a\u00A0b'), 'a b');
    assert.equal(saslprep('\u2168'), 'IX');
    assert.equal(saslprep('\u00AA'), 'a');
    assert.equal(saslprep('a\u0007b'), undefined);
    assert.equal(saslprep('a\tb'), undefined);
    assert.throws(() => deriveScramSecret('bad\u0000', 'sha1'), UnpreparablePasswordError);
    // The same password composed differently gives the same keys.
    const salt = Buffer.alloc(16, 1);
    assert.deepEqual(deriveScramSecret('caf\u00e9', 'sha256', 4096, salt), deriveScramSecret('cafe\u0301', 'sha256', 4096, salt));
  });
});
