import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainToASCII } from 'node:url';
import fc from 'fast-check';
import { normalizeDomain } from './address.js';

/** The IDNA conversion for every input, as normalizeDomain did before its ASCII shortcut. */
function throughIdna(domain: string): string | undefined {
  let d = domain.trim();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (d.length === 0 || d.length > 253) return undefined;
  const ascii = domainToASCII(d.normalize('NFC').toLowerCase());
  if (ascii === '' || ascii.length > 253) return undefined;
  return ascii.split('.').every((l) => /^(?!-)[a-z0-9-]{1,63}(?<!-)$/.test(l)) ? ascii : undefined;
}

test('normalizeDomain: lower case, no trailing dot, A-labels; invalid names are refused', () => {
  assert.equal(normalizeDomain('Example.TEST.'), 'example.test');
  assert.equal(normalizeDomain('Bücher.example'), 'xn--bcher-kva.example');
  assert.equal(normalizeDomain('xn--bcher-kva.example'), 'xn--bcher-kva.example');
  assert.equal(normalizeDomain('-bad.example'), undefined);
  assert.equal(normalizeDomain('a..example'), undefined);
  assert.equal(normalizeDomain(`${'a'.repeat(64)}.example`), undefined);
  assert.equal(normalizeDomain(''), undefined);
});

test('the ASCII shortcut gives what the IDNA conversion gives, for any name', () => {
  const ascii = fc.stringMatching(/^[a-zA-Z0-9.-]{0,40}\.?$/);
  const mixed = fc.array(fc.constantFrom('a', 'Z', '0', '-', '.', 'xn--', 'ü', 'ß', 'İ', '\u0301', ' '), { maxLength: 20 }).map((a) => a.join(''));
  fc.assert(
    fc.property(fc.oneof(ascii, mixed), (name) => {
      assert.equal(normalizeDomain(name), throughIdna(name));
    }),
    { numRuns: 5000 },
  );
});
