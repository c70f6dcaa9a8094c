import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_TXT_STRING_OCTETS, splitTxtStrings } from './txt-strings.js';

describe('splitTxtStrings', () => {
  test('a short text is one string; an empty one is one empty string', () => {
    assert.deepEqual(splitTxtStrings('v=spf1 mx -all'), ['v=spf1 mx -all']);
    assert.deepEqual(splitTxtStrings(''), ['']);
  });

  test('a long text is cut at 255 octets and joins back unchanged', () => {
    const text = 'a'.repeat(600);
    const strings = splitTxtStrings(text);
    assert.deepEqual(strings.map((s) => s.length), [255, 255, 90]);
    assert.equal(strings.join(''), text);
  });

  test('octets are counted, and a multi-octet character is never cut in two', () => {
    // 254 ASCII octets, then "é" (2 octets in UTF-8): it does not fit in the first string.
    const text = `${'a'.repeat(254)}é${'b'.repeat(10)}`;
    const strings = splitTxtStrings(text);
    assert.deepEqual(strings, ['a'.repeat(254), `é${'b'.repeat(10)}`]);
    for (const s of strings) assert.ok(Buffer.byteLength(s, 'utf8') <= MAX_TXT_STRING_OCTETS);
  });
});
