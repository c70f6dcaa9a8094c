import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DotReader } from './dot-reader.js';
import { MessageBody } from './message-body.js';

interface Read {
  /** The message as stored, or undefined if the end mark never came. */
  message: string | undefined;
  /** What followed the end mark. */
  rest: string;
}

function read(input: string, size = Infinity, bareNewline: 'reject' | 'normalize' = 'normalize'): Read {
  const bytes = Buffer.from(input, 'latin1');
  const body = new MessageBody({ maxMessageSize: 1 << 21, maxTextLine: 1 << 20, bareNewline });
  const reader = new DotReader(body);
  let rest = '';
  for (let i = 0; i < bytes.length; i += size) {
    const chunk = bytes.subarray(i, Math.min(bytes.length, i + size));
    if (reader.done) {
      rest += chunk.toString('latin1');
      continue;
    }
    const end = reader.feed(chunk, 0);
    rest += chunk.subarray(end).toString('latin1');
  }
  if (!reader.done) return { message: undefined, rest };
  const verdict = body.finish();
  assert.ok(verdict.ok);
  return { message: verdict.message.toString('latin1'), rest };
}

/** Dot-stuffing as a client does it (RFC 5321 4.5.2): lines are what CRLF ends. */
function stuff(body: string): string {
  return body.replace(/(^|\r\n)\./g, '$1..');
}

function normalize(text: string): string {
  return text.replace(/\r\n|\r|\n/g, '\r\n');
}

describe('DotReader', () => {
  const cases: Array<[string, string, string | undefined, string]> = [
    ['simple message', 'Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n', 'Subject: x\r\n\r\nhi\r\n', 'QUIT\r\n'],
    ['empty message: "." CRLF right after the 354', '.\r\nNOOP\r\n', '', 'NOOP\r\n'],
    ['dot-unstuffing', '..a\r\n...\r\nb.\r\n.\r\n', '.a\r\n..\r\nb.\r\n', ''],
    ['a stuffed lone dot', 'x\r\n..\r\n.\r\n', 'x\r\n.\r\n', ''],
    ['"\\n.\\n" does not end', 'a\n.\nb\r\n.\r\n', 'a\r\n.\r\nb\r\n', ''],
    ['"\\r\\n.\\n" does not end', 'a\r\n.\nb\r\n.\r\n', 'a\r\n\r\nb\r\n', ''],
    ['"\\n.\\r\\n" does not end', 'a\n.\r\nb\r\n.\r\n', 'a\r\n.\r\nb\r\n', ''],
    ['"\\r.\\r" does not end', 'a\r.\rb\r\n.\r\n', 'a\r\n.\r\nb\r\n', ''],
    ['"\\r\\n.\\r" then text', 'a\r\n.\rb\r\n.\r\n', 'a\r\n\r\nb\r\n', ''],
    ['no end mark yet', 'a\r\n.', undefined, ''],
    ['end mark without CRLF before it is text', 'a.\r\n.\r\n', 'a.\r\n', ''],
  ];
  for (const [name, input, message, rest] of cases) {
    test(name, () => {
      for (const size of [Infinity, 1, 2, 3, 5]) {
        assert.deepEqual(read(input, size), { message, rest }, `fragment ${size}`);
      }
    });
  }

  test('a 1 MiB message in one chunk', () => {
    const line = 'x'.repeat(76) + '\r\n';
    const text = line.repeat(Math.ceil((1 << 20) / line.length));
    assert.equal(read(`${text}.\r\n`).message, text);
  });

  test('property: any body, dot-stuffed, comes back whole whatever the fragmentation', () => {
    const piece = fc.constantFrom('a', '.', '\r', '\n', '\r\n', '\r\n.', '\n.\n', '\r.\r', '\n.\r\n', ' ', '\0', 'é');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), fc.integer({ min: 1, max: 20 }), (pieces, size) => {
        let body = pieces.join('');
        if (!body.endsWith('\r\n') && body !== '') body += '\r\n';
        const result = read(`${stuff(body)}.\r\nNEXT`, size);
        assert.equal(result.message, normalize(body));
        assert.equal(result.rest, 'NEXT');
      }),
    );
  });
});
