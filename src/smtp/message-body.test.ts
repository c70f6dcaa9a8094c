import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageBody, type MessageBodyLimits } from './message-body.js';
import { prepend } from '../util/headroom.js';

const limits: MessageBodyLimits = { maxMessageSize: 1000, maxTextLine: 100, bareNewline: 'reject' };

function collect(pieces: string[], overrides: Partial<MessageBodyLimits> = {}) {
  const body = new MessageBody({ ...limits, ...overrides });
  for (const piece of pieces) body.append(Buffer.from(piece, 'latin1'));
  return body.finish();
}

describe('MessageBody', () => {
  test('keeps the octets as given', () => {
    const verdict = collect(['Subject: hi\r\n', '\r\nbody\r\n']);
    assert.ok(verdict.ok);
    assert.equal(verdict.message.toString(), 'Subject: hi\r\n\r\nbody\r\n');
    assert.equal(verdict.size, 21);
  });

  test('a big body from several appends leaves room for the Received header in front; a small one does not need it', () => {
    const line = `${'x'.repeat(62)}\r\n`;
    const pieces = [line.repeat(100), line.repeat(100)];
    const big = collect(pieces, { maxMessageSize: 1 << 20 });
    assert.ok(big.ok);
    assert.equal(big.message.toString('latin1'), pieces.join(''));
    const spooled = prepend(Buffer.from('Received: by us\r\n'), big.message);
    assert.equal(spooled.buffer, big.message.buffer, 'the header went into the room, the body was not copied');
    assert.equal(spooled.toString('latin1'), `Received: by us\r\n${pieces.join('')}`);
    const small = collect(['Subject: hi\r\n', '\r\nbody\r\n']);
    assert.ok(small.ok);
    assert.equal(prepend(Buffer.from('Received: by us\r\n'), small.message).toString(), 'Received: by us\r\nSubject: hi\r\n\r\nbody\r\n');
  });

  test('a CRLF split across appends is not a bare CR', () => {
    assert.equal(collect(['a\r', '\nb\r', '\n']).ok, true);
  });

  const bare: Array<[string, string[], string]> = [
    ['bare LF', ['a\nb\r\n'], 'a\r\nb\r\n'],
    ['bare CR', ['a\rb\r\n'], 'a\r\nb\r\n'],
    ['bare CR at the end of an append', ['a\r', 'b\r\n'], 'a\r\nb\r\n'],
    ['bare CR at the very end', ['a\r'], 'a\r\n'],
    ['LF right after a split CRLF', ['a\r', '\n\n'], 'a\r\n\r\n'],
    ['CR CR LF', ['a\r\r\n'], 'a\r\n\r\n'],
  ];
  for (const [name, pieces, normalized] of bare) {
    test(`${name}: rejected with 550 5.6.0, or normalized to CRLF`, () => {
      const rejected = collect(pieces);
      assert.equal(rejected.ok, false);
      if (!rejected.ok) {
        assert.equal(rejected.reply.code, 550);
        assert.equal(rejected.reply.enhanced, '5.6.0');
      }
      const fixed = collect(pieces, { bareNewline: 'normalize' });
      assert.ok(fixed.ok);
      assert.equal(fixed.message.toString('latin1'), normalized);
    });
  }

  test('over the size limit: 552 5.3.4 and nothing kept', () => {
    const verdict = collect(['x'.repeat(60) + '\r\n', ...Array(20).fill('y'.repeat(60) + '\r\n')]);
    assert.equal(verdict.ok, false);
    if (!verdict.ok) assert.deepEqual([verdict.reply.code, verdict.reply.enhanced], [552, '5.3.4']);
    assert.equal(verdict.size, 21 * 62);
  });

  test('a line of the limit (CRLF included) passes; one octet more is 554 5.6.0', () => {
    assert.equal(collect(['a'.repeat(98) + '\r\n']).ok, true);
    const verdict = collect(['a'.repeat(50), 'a'.repeat(49) + '\r', '\n']);
    assert.equal(verdict.ok, false);
    if (!verdict.ok) {
      assert.deepEqual([verdict.reply.code, verdict.reply.enhanced], [554, '5.6.0']);
      assert.match(verdict.reply.lines[0] ?? '', /longer than 100 octets/);
    }
  });

  test('an unterminated long last line counts too', () => {
    assert.equal(collect(['a'.repeat(101)]).ok, false);
  });

  test('a chunk full of CRs is checked without rescanning (linear)', () => {
    const verdict = collect(['\r'.repeat(200) + '\n'], { bareNewline: 'normalize', maxMessageSize: 10_000 });
    assert.ok(verdict.ok);
    assert.equal(verdict.message.toString(), '\r\n'.repeat(200));
  });
});
