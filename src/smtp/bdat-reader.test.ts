import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BdatReader } from './bdat-reader.js';
import { MessageBody } from './message-body.js';

const limits = { maxMessageSize: 1000, maxTextLine: 1000, bareNewline: 'reject' as const };

describe('BdatReader', () => {
  test('reads exactly its size and stops there', () => {
    const body = new MessageBody(limits);
    const reader = new BdatReader(5, body);
    const chunk = Buffer.from('ab\r\n.RSET\r\n');
    assert.equal(reader.feed(chunk, 0), 5);
    assert.ok(reader.done);
    assert.equal(reader.feed(chunk, 5), 5, 'a finished reader takes nothing more');
    const verdict = body.finish();
    assert.ok(verdict.ok);
    assert.equal(verdict.message.toString(), 'ab\r\n.');
  });

  test('any fragmentation', () => {
    const body = new MessageBody(limits);
    const reader = new BdatReader(6, body);
    const taken = ['a', 'b\r', '\nc', 'de', 'X'].map((piece) => reader.feed(Buffer.from(piece), 0));
    assert.deepEqual(taken, [1, 2, 2, 1, 0]);
    const verdict = body.finish();
    assert.ok(verdict.ok);
    assert.equal(verdict.message.toString(), 'ab\r\ncd');
  });

  test('size 0 is done at once', () => {
    assert.ok(new BdatReader(0, undefined).done);
  });

  test('without a body the octets are skipped', () => {
    const reader = new BdatReader(3, undefined);
    assert.equal(reader.feed(Buffer.from('xyzNOOP\r\n'), 0), 3);
    assert.ok(reader.done);
  });
});
