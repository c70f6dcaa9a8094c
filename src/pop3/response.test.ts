import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { byteStuff, err, formatResponse, ok, topOfMessage } from './response.js';

const text = (r: string | Buffer) => (typeof r === 'string' ? r : r.toString('latin1'));

describe('formatResponse', () => {
  test('status lines, with and without a response code', () => {
    assert.equal(formatResponse(ok('done')), '+OK done\r\n');
    assert.equal(formatResponse(ok('')), '+OK\r\n');
    assert.equal(formatResponse(err('No such message')), '-ERR No such message\r\n');
    assert.equal(formatResponse(err('Mailbox in use', 'IN-USE')), '-ERR [IN-USE] Mailbox in use\r\n');
  });

  test('multi-line: lines are byte-stuffed and end with CRLF.CRLF', () => {
    assert.equal(formatResponse({ kind: 'lines', text: 'list', lines: ['1 20', '.odd'] }), '+OK list\r\n1 20\r\n..odd\r\n.\r\n');
    assert.equal(formatResponse({ kind: 'lines', text: '0 messages', lines: [] }), '+OK 0 messages\r\n.\r\n');
    const message = formatResponse({ kind: 'message', text: '9 octets', data: Buffer.from('.a\r\nb\r\n.\r\n') });
    assert.equal(text(message), '+OK 9 octets\r\n..a\r\nb\r\n..\r\n.\r\n');
  });

  test('challenges are "+ " and base64, empty ones "+ "', () => {
    assert.equal(formatResponse({ kind: 'challenge', data: Buffer.alloc(0) }), '+ \r\n');
    assert.equal(formatResponse({ kind: 'challenge', data: Buffer.from('Username:') }), '+ VXNlcm5hbWU6\r\n');
  });
});

describe('byteStuff', () => {
  test('a message without a final CRLF gets one, so the "." stands alone', () => {
    assert.equal(text(byteStuff(Buffer.from('a\r\nb'))), 'a\r\nb\r\n');
    assert.equal(text(byteStuff(Buffer.alloc(0))), '');
  });

  test('a "." after a bare LF is stuffed too', () => {
    assert.equal(text(byteStuff(Buffer.from('a\n.\r\n'))), 'a\n..\r\n');
  });

  test('property: un-stuffing the lines gives the message back, and no line is a lone "."', () => {
    const piece = fc.constantFrom('.', '..', 'a', ' ', '\r\n', '\r\n.', '.\r\n', 'é');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
        const message = pieces.join('') + (pieces.join('').endsWith('\r\n') || pieces.length === 0 ? '' : '\r\n');
        const stuffed = byteStuff(Buffer.from(message)).toString();
        const lines = stuffed.split('\r\n').slice(0, -1);
        assert.ok(lines.every((l) => l !== '.'));
        assert.equal(lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n') + (lines.length ? '\r\n' : ''), message);
      }),
      { seed: 1939, numRuns: 300 },
    );
  });
});

describe('topOfMessage', () => {
  const message = Buffer.from('A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n');
  test('the header, the empty line, then n body lines', () => {
    assert.equal(text(topOfMessage(message, 0)), 'A: 1\r\nB: 2\r\n\r\n');
    assert.equal(text(topOfMessage(message, 2)), 'A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n');
    assert.equal(text(topOfMessage(message, 99)), message.toString());
  });
  test('a message without an empty line is all header', () => {
    assert.equal(text(topOfMessage(Buffer.from('A: 1\r\nB: 2\r\n'), 5)), 'A: 1\r\nB: 2\r\n');
  });
});
