import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseClientAddress } from './email-address.js';

describe('parseClientAddress', () => {
  test('an address: the domain normalized (lower case, A-labels), the local part kept', () => {
    assert.deepEqual(parseClientAddress('Alice.Smith+tag@Example.TEST'), { address: 'Alice.Smith+tag@example.test', domain: 'example.test' });
    assert.deepEqual(parseClientAddress('bob@bücher.test'), { address: 'bob@xn--bcher-kva.test', domain: 'xn--bcher-kva.test' });
    assert.deepEqual(parseClientAddress("o'brien&co@example.test")?.domain, 'example.test');
    assert.equal(parseClientAddress('jörg@example.test')?.address, 'jörg@example.test', 'RFC 6531 local part');
  });

  test('anything else is refused', () => {
    const bad = [
      '',
      'alice',
      '@example.test',
      'alice@',
      'alice@@example.test',
      '"alice smith"@example.test',
      'alice@[127.0.0.1]',
      '@relay.test:alice@example.test',
      'alice smith@example.test',
      'alice@example.test ',
      ' alice@example.test',
      'alice@example.test\r\nX: y',
      'alice\u0000@example.test',
      'alice@exa_mple.test',
      'alice@-example.test',
      'alice..smith@example.test',
      '.alice@example.test',
      '<alice@example.test>',
      'alice@example.test> SIZE=1',
      `${'a'.repeat(65)}@example.test`,
      // Over 254 octets in all (RFC 5321 4.5.3.1.3), though every label is short enough.
      `a@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(63)}.test`,
    ];
    for (const text of bad) assert.equal(parseClientAddress(text), undefined, JSON.stringify(text));
  });
});
