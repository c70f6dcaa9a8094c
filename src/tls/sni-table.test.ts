import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SniTable } from './sni-table.js';

const table = new SniTable({ names: ['mx.example.test'], value: 'default' }, [
  { names: ['mail.example.test', '*.example.test'], value: 'example' },
  { names: ['Mail.Other.TEST', 'mx.example.test'], value: 'other' },
]);

test('no name or an unknown name gets the first entry', () => {
  assert.equal(table.select(undefined), 'default');
  assert.equal(table.select(''), 'default');
  assert.equal(table.select('nowhere.invalid'), 'default');
});

test('an exact name wins, case-insensitively and without a trailing dot', () => {
  assert.equal(table.select('mail.example.test'), 'example');
  assert.equal(table.select('MAIL.OTHER.test.'), 'other');
});

test('for a name two entries claim, the earlier entry wins', () => {
  assert.equal(table.select('mx.example.test'), 'default');
});

test('a wildcard covers exactly one label', () => {
  assert.equal(table.select('smtp.example.test'), 'example');
  assert.equal(table.select('example.test'), 'default');
  assert.equal(table.select('a.b.example.test'), 'default');
});
