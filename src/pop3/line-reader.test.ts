import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LineReader, type LineEvent } from './line-reader.js';

/** Every event from feeding these chunks in order. */
function events(maxLine: number, ...chunks: string[]): LineEvent[] {
  const reader = new LineReader(maxLine);
  const found: LineEvent[] = [];
  for (const text of chunks) {
    const chunk = Buffer.from(text, 'latin1');
    let offset = 0;
    while (offset < chunk.length) {
      const read = reader.read(chunk, offset);
      offset = read.offset;
      if (read.event) found.push(read.event);
    }
  }
  return found;
}

const line = (text: string): LineEvent => ({ kind: 'line', text });

describe('pop3 LineReader', () => {
  test('only CRLF ends a line, also split across chunks', () => {
    assert.deepEqual(events(255, 'STAT\r\nLIST 1\r', '\nNOOP\r\n'), [line('STAT'), line('LIST 1'), line('NOOP')]);
  });
  test('a bare LF or CR makes the line bad, and does not end it', () => {
    assert.deepEqual(events(255, 'RETR 1\nDELE 1\r\nNOOP\rQUIT\r\nSTAT\r\n'), [
      { kind: 'bad', reason: 'bare-newline' },
      { kind: 'bad', reason: 'bare-newline' },
      line('STAT'),
    ]);
  });
  test('NUL and invalid UTF-8 are bad lines', () => {
    assert.deepEqual(events(255, 'US\0ER\r\n\xff\r\nPASS é\r\n'.replace('é', '\xc3\xa9')), [
      { kind: 'bad', reason: 'nul' },
      { kind: 'bad', reason: 'not-utf8' },
      line('PASS é'),
    ]);
  });
  test('an overlong line is reported once and read to its end', () => {
    assert.deepEqual(events(10, 'x'.repeat(5), 'x'.repeat(20), 'x\r\nSTAT\r\n'), [{ kind: 'bad', reason: 'too-long' }, line('STAT')]);
    assert.deepEqual(events(10, '12345678\r\n123456789\r\n'), [line('12345678'), { kind: 'bad', reason: 'too-long' }]);
  });
});
