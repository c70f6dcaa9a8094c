import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineReader, type LineEvent } from './line-reader.js';

const scratchMemory = Buffer.alloc(64 * 1024);
function scratch(data: Buffer): Buffer {
  const view = data.length <= scratchMemory.length ? scratchMemory.subarray(0, data.length) : Buffer.alloc(data.length);
  data.copy(view);
  return view;
}

/** Feeds `input` in pieces of `size` octets and collects every event. */
function readAll(input: string | Buffer, size = Infinity, maxLine = 512): LineEvent[] {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const reader = new LineReader(maxLine);
  const events: LineEvent[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    // Each chunk in the same scratch memory, overwritten after it is read, as a socket's shared
    // read buffer is (server/shared-reads.ts): a piece of a line kept without a copy would show.
    const chunk = scratch(bytes.subarray(i, Math.min(bytes.length, i + size)));
    let offset = 0;
    while (offset < chunk.length) {
      const read = reader.read(chunk, offset);
      assert.ok(read.offset > offset, 'every read makes progress');
      offset = read.offset;
      if (read.event) events.push(read.event);
    }
    chunk.fill(0xee);
  }
  return events;
}

const line = (text: string): LineEvent => ({ kind: 'line', text });
const bad = (reason: 'bare-newline' | 'nul' | 'too-long' | 'not-utf8'): LineEvent => ({ kind: 'bad', reason });

describe('LineReader', () => {
  const cases: Array<[string, string, LineEvent[]]> = [
    ['one line', 'NOOP\r\n', [line('NOOP')]],
    ['two lines', 'EHLO a\r\nNOOP\r\n', [line('EHLO a'), line('NOOP')]],
    ['empty line', '\r\n', [line('')]],
    ['no CRLF yet', 'NOOP', []],
    ['bare LF is not a line end', 'MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n', [bad('bare-newline')]],
    ['bare CR is not a line end', 'NOOP\rQUIT\r\n', [bad('bare-newline')]],
    ['LF then CRLF', 'NOOP\n\r\n', [bad('bare-newline')]],
    ['CR CR LF', 'NOOP\r\r\n', [bad('bare-newline')]],
    ['line after a bad one', 'A\nB\r\nNOOP\r\n', [bad('bare-newline'), line('NOOP')]],
    ['NUL', 'NO\0OP\r\n', [bad('nul')]],
    ['invalid UTF-8', 'NOOP \xff\r\n', [bad('not-utf8')]],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      for (const size of [Infinity, 1, 2, 3]) assert.deepEqual(readAll(input, size), expected, `fragment ${size}`);
    });
  }

  test('UTF-8 is decoded', () => {
    assert.deepEqual(readAll(Buffer.from('RCPT TO:<jörg@bücher.de>\r\n')), [line('RCPT TO:<jörg@bücher.de>')]);
  });

  test('a line of exactly the limit (CRLF included) is accepted, one more octet is too long', () => {
    const fits = 'x'.repeat(510);
    assert.deepEqual(readAll(`${fits}\r\n`, Infinity, 512), [line(fits)]);
    assert.deepEqual(readAll(`${fits}\r\n`, 1, 512), [line(fits)]);
    assert.deepEqual(readAll(`${fits}x\r\nNOOP\r\n`, Infinity, 512), [bad('too-long'), line('NOOP')]);
  });

  test('an overlong line is reported once, as soon as it passes the limit, then skipped to its CRLF', () => {
    const reader = new LineReader(512);
    const first = reader.read(Buffer.alloc(600, 'a'), 0);
    assert.deepEqual(first.event, bad('too-long'));
    const more = reader.read(Buffer.alloc(100_000, 'b'), 0);
    assert.equal(more.event, undefined);
    const end = Buffer.from('bbb\nstill\r\nNOOP\r\n');
    assert.deepEqual(reader.read(end, 0), { offset: end.length, event: line('NOOP') });
  });

  test('reset forgets a partial line', () => {
    const reader = new LineReader(512);
    reader.read(Buffer.from('MAIL FROM:<evil@x>'), 0);
    reader.reset();
    assert.deepEqual(reader.read(Buffer.from('NOOP\r\n'), 0).event, line('NOOP'));
  });

  test('property: fragmentation never changes the events', () => {
    const octet = fc.constantFrom(...Buffer.from('AB \r\n.\0\xff', 'latin1'));
    fc.assert(
      fc.property(fc.array(octet, { maxLength: 300 }), fc.integer({ min: 1, max: 20 }), (octets, size) => {
        const bytes = Buffer.from(octets);
        assert.deepEqual(readAll(bytes, size, 512), readAll(bytes, Infinity, 512));
      }),
    );
  });
});
