import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { replyLine } from '../../mail/reply.js';
import { MAX_REPLY_LINE, ReplyParser, ReplySyntaxError } from './peer-reply.js';

function parseAll(text: string, pieceSize = text.length): ReturnType<ReplyParser['push']> {
  const parser = new ReplyParser();
  const out = [];
  for (let i = 0; i < text.length; i += pieceSize) out.push(...parser.push(Buffer.from(text.slice(i, i + pieceSize), 'latin1')));
  return out;
}

describe('ReplyParser', () => {
  test('multi-line replies, in any fragmentation', () => {
    const wire = '250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n550 5.1.1 No such user\r\n220\r\n';
    for (const size of [1, 3, 17, wire.length]) {
      const replies = parseAll(wire, size);
      assert.deepEqual(replies, [
        { code: 250, enhanced: undefined, lines: ['mx.example.org', 'PIPELINING', 'SIZE 1000'] },
        { code: 550, enhanced: '5.1.1', lines: ['No such user'] },
        { code: 220, enhanced: undefined, lines: [''] },
      ]);
    }
  });

  test('the enhanced code is taken off every line, and replyLine puts it back once', () => {
    const [r] = parseAll('451-4.3.0 first\r\n451 4.3.0 second\r\n');
    assert.deepEqual(r, { code: 451, enhanced: '4.3.0', lines: ['first', 'second'] });
    assert.equal(replyLine(r!), '451 4.3.0 first second');
    const [bare] = parseAll('250 4.3.0 looks enhanced but is not of class 2\r\n');
    assert.deepEqual(bare?.lines, ['4.3.0 looks enhanced but is not of class 2']);
  });

  test('an enhanced code of the wrong class is not taken', () => {
    assert.equal(parseAll('550 2.0.0 odd\r\n')[0]!.enhanced, undefined);
  });

  test('malformed lines, changing codes and overlong lines are protocol errors', () => {
    assert.throws(() => parseAll('hello\r\n'), ReplySyntaxError);
    assert.throws(() => parseAll('250-a\r\n251 b\r\n'), ReplySyntaxError);
    assert.throws(() => parseAll('6xx nope\r\n'), ReplySyntaxError);
    assert.throws(() => parseAll(`250 ${'x'.repeat(MAX_REPLY_LINE + 10)}`), ReplySyntaxError, 'even without a line end');
  });

  test('knows when input is left over', () => {
    const parser = new ReplyParser();
    parser.push(Buffer.from('220 go ahead\r\n'));
    assert.equal(parser.hasBufferedInput, false);
    parser.push(Buffer.from('250-inj'));
    assert.equal(parser.hasBufferedInput, true);
  });
});
