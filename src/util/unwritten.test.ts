import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unwritten } from './unwritten.js';

test('unwritten: what is left after a short write, across buffer boundaries', () => {
  const parts = [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')];
  const left = (n: number): string => Buffer.concat(unwritten(parts, n)).toString();
  assert.equal(left(0), 'abcdefgh');
  assert.equal(left(2), 'cdefgh');
  assert.equal(left(3), 'defgh');
  assert.equal(left(5), 'fgh');
  assert.equal(left(8), '');
  assert.deepEqual(unwritten(parts, 3)[0], parts[1], 'a whole buffer is passed on as it is');
});
