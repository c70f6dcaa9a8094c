import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageBody, type MessageBodyLimits } from './message-body.js';
import { prepend } from '../util/headroom.js';

const limits: MessageBodyLimits = { maxMessageSize: 1000, maxTextLine: 100, bareNewline: 'reject' };

/** Appends each piece from the same memory, overwritten after the call, as a socket's shared read buffer is. */
function collect(pieces: string[], overrides: Partial<MessageBodyLimits> = {}) {
  const body = new MessageBody({ ...limits, ...overrides });
  const memory = Buffer.alloc(Math.max(0, ...pieces.map((p) => p.length)));
  for (const piece of pieces) {
    const view = memory.subarray(0, memory.write(piece, 'latin1'));
    body.append(view);
    view.fill(0xee);
  }
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

  test('bodies across many 64 KiB blocks, one after the other, each come out whole', () => {
    const line = (n: number) => `${String(n).padStart(6, '0')}${'y'.repeat(70)}\r\n`;
    for (const lines of [1, 900, 2000, 5000]) {
      const text = Array.from({ length: lines }, (_, i) => line(i)).join('');
      // Uneven pieces, so that block edges and piece edges fall everywhere.
      const pieces: string[] = [];
      for (let at = 0; at < text.length; at += 7919) pieces.push(text.slice(at, at + 7919));
      const verdict = collect(pieces, { maxMessageSize: 1 << 22 });
      assert.ok(verdict.ok);
      assert.equal(verdict.size, text.length);
      assert.equal(verdict.message.toString('latin1'), text);
    }
  });

  test('two bodies filled at once keep their own blocks, also when one ends and its blocks are taken again', () => {
    const a = new MessageBody({ ...limits, maxMessageSize: 1 << 20 });
    const b = new MessageBody({ ...limits, maxMessageSize: 1 << 20 });
    const c = new MessageBody({ ...limits, maxMessageSize: 1 << 20 });
    const text = (ch: string) => `${ch.repeat(98)}\r\n`.repeat(1000);
    a.append(Buffer.from(text('a')));
    b.append(Buffer.from(text('b')));
    const first = a.finish();
    c.append(Buffer.from(text('c')));
    b.append(Buffer.from(text('B')));
    const second = b.finish();
    const third = c.finish();
    assert.ok(first.ok && second.ok && third.ok);
    assert.equal(first.message.toString(), text('a'));
    assert.equal(second.message.toString(), text('b') + text('B'));
    assert.equal(third.message.toString(), text('c'));
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
