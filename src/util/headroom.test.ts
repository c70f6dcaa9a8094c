import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepend, withHeadroom } from './headroom.js';

test('a prefix goes into the room in front of the body: same memory, no copy of the body', () => {
  const body = withHeadroom(64, 10);
  body.write('0123456789');
  const out = prepend(Buffer.from('Received: x\r\n'), body);
  assert.equal(out.toString(), 'Received: x\r\n0123456789');
  assert.equal(out.buffer, body.buffer);
  assert.equal(out.byteOffset + 13, body.byteOffset);
});

test('the room is given out once: a second prepend copies and leaves the first intact', () => {
  const body = withHeadroom(64, 4);
  body.write('body');
  const first = prepend(Buffer.from('A: 1\r\n'), body);
  const second = prepend(Buffer.from('B: 2\r\n'), body);
  assert.equal(first.toString(), 'A: 1\r\nbody');
  assert.equal(second.toString(), 'B: 2\r\nbody');
  assert.notEqual(second.buffer, body.buffer);
});

test('too little room, or a buffer from elsewhere: a copy of both', () => {
  const small = withHeadroom(2, 4);
  small.write('body');
  const out = prepend(Buffer.from('Long: header\r\n'), small);
  assert.equal(out.toString(), 'Long: header\r\nbody');
  assert.notEqual(out.buffer, small.buffer);
  const foreign = Buffer.from('xxxxbody').subarray(4);
  assert.equal(prepend(Buffer.from('H: v\r\n'), foreign).toString(), 'H: v\r\nbody');
  assert.equal(Buffer.from('xxxxbody').toString(), 'xxxxbody');
});
