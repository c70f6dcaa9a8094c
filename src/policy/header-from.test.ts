import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readHeaderFields } from '../mail/header-section.js';
import { parseAddressList, readOriginators } from './header-from.js';

function msg(...lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

describe('parseAddressList', () => {
  const cases: [string, string[] | undefined][] = [
    ['alice@ours.test', ['alice@ours.test']],
    ['  Alice Example <alice@ours.test>  ', ['alice@ours.test']],
    ['"Example, Alice" <alice@ours.test>', ['alice@ours.test']],
    ['"bob@theirs.test" <alice@ours.test>', ['alice@ours.test']],
    ['"Alice \\"A\\" E" <alice@ours.test>', ['alice@ours.test']],
    ['Alice (the boss, <ceo@ours.test>) <alice@ours.test> (work)', ['alice@ours.test']],
    ['(nested (comment <x@y.test>)) alice@ours.test', ['alice@ours.test']],
    ['John Q. Public <jqp@ours.test>', ['jqp@ours.test']],
    ['=?utf-8?B?PGNlb0BvdXJzLnRlc3Q+?= <alice@ours.test>', ['alice@ours.test']],
    // A broken client's encoded word with raw specials inside stays one word.
    ['=?utf-8?q?<ceo@ours.test>,_x?= <alice@ours.test>', ['alice@ours.test']],
    ['alice@ours.test, Bob <bob@theirs.test>', ['alice@ours.test', 'bob@theirs.test']],
    ['alice@ours.test,, ,bob@theirs.test', ['alice@ours.test', 'bob@theirs.test']],
    ['"john.smith"@ours.test', ['john.smith@ours.test']],
    ['first . last @ ours . test', ['first.last@ours.test']],
    ['<@relay.test,@other.test:alice@ours.test>', ['alice@ours.test']],
    ['alice@[192.0.2.1]', ['alice@[192.0.2.1]']],
    ['Team: alice@ours.test, Bob <bob@theirs.test>;', ['alice@ours.test', 'bob@theirs.test']],
    ['undisclosed-recipients:;', []],
    ['Grüße <jürgen@ours.test>', ['jürgen@ours.test']],
    ['', []],
    // What a mail client might read differently is unreadable here, never guessed at.
    ['alice@ours.test <evil@theirs.test>', undefined],
    ['Alice <alice@ours.test', undefined],
    ['"unterminated <alice@ours.test>', undefined],
    ['(unterminated alice@ours.test', undefined],
    ['alice', undefined],
    ['John Smith@ours.test', undefined],
    ['<>', undefined],
    ['alice@"ours.test"', undefined],
    ['alice@ours.test.', undefined],
    ['Team: Inner: a@b.test;;', undefined],
    ['alice@ours.test) ', undefined],
    ['a\\b@ours.test', undefined],
    ['Team: alice@ours.test', undefined],
    ['alice@ours.test\u00a0<evil@theirs.test>', undefined],
  ];
  for (const [input, expected] of cases) {
    test(JSON.stringify(input), () => {
      assert.deepEqual(parseAddressList(input), expected);
    });
  }

  test('never throws, whatever the input', () => {
    const alphabet = fc.constantFrom(...'ab@.<>:;,"()[]\\ \t=?\u00a0é'.split(''));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), (chars) => {
        const r = parseAddressList(chars.join(''));
        assert.ok(r === undefined || Array.isArray(r));
      }),
      { seed: 8, numRuns: 2000 },
    );
  });

  test('deeply nested comments cost no stack', () => {
    const deep = `${'('.repeat(100_000)}${')'.repeat(100_000)} alice@ours.test`;
    assert.deepEqual(parseAddressList(deep), ['alice@ours.test']);
  });
});

describe('readHeaderFields', () => {
  test('unfolds continuation lines and stops at the first empty line', () => {
    const fields = readHeaderFields(
      msg('From: Alice', '  <alice@ours.test>', 'Subject : hi', '\tthere', '', 'From: evil@theirs.test'),
    );
    assert.deepEqual(fields, [
      { name: 'From', value: ' Alice  <alice@ours.test>' },
      { name: 'Subject', value: ' hi\tthere' },
    ]);
  });

  test('bare LF line ends; lines that are no field are skipped with their continuations', () => {
    const fields = readHeaderFields(Buffer.from('From alice Mon Jan  1 00:00:00 2024\nX-A: 1\ngarbage\n <x@y>\nTo: b\n\nbody'));
    assert.deepEqual(fields, [
      { name: 'X-A', value: ' 1' },
      { name: 'To', value: ' b' },
    ]);
  });

  test('a message that starts with an empty line has no header fields', () => {
    assert.deepEqual(readHeaderFields(msg('', 'From: alice@ours.test')), []);
  });
});

describe('readOriginators', () => {
  test('From and Sender', () => {
    const r = readOriginators(
      msg('Sender: sec@ours.test', 'from: A <a@ours.test>, b@ours.test', 'Subject: x', '', 'body'),
    );
    assert.deepEqual(r, { kind: 'ok', from: ['a@ours.test', 'b@ours.test'], sender: 'sec@ours.test' });
  });

  test('a From in the body is ignored', () => {
    const r = readOriginators(msg('From: alice@ours.test', '', 'From: evil@theirs.test'));
    assert.deepEqual(r, { kind: 'ok', from: ['alice@ours.test'], sender: undefined });
  });

  test('no header section at all, or a From only in the body', () => {
    assert.deepEqual(readOriginators(Buffer.alloc(0)), { kind: 'invalid', why: 'no From header' });
    assert.deepEqual(readOriginators(msg('Subject: x', '', 'From: a@ours.test')), {
      kind: 'invalid',
      why: 'no From header',
    });
  });

  test('two From headers are refused, in any spelling', () => {
    const r = readOriginators(msg('From: alice@ours.test', 'FROM : evil@theirs.test', '', ''));
    assert.deepEqual(r, { kind: 'invalid', why: 'more than one From header' });
  });

  test('an unreadable or empty From, two Senders, a Sender with two mailboxes', () => {
    assert.equal(readOriginators(msg('From: alice@ours.test <x@y.test>', '', '')).kind, 'invalid');
    assert.equal(readOriginators(msg('From: undisclosed:;', '', '')).kind, 'invalid');
    assert.equal(readOriginators(msg('From: a@ours.test', 'Sender: a@ours.test', 'Sender: b@x.test', '')).kind, 'invalid');
    assert.equal(readOriginators(msg('From: a@ours.test', 'Sender: a@ours.test, b@x.test', '')).kind, 'invalid');
  });

  test('a folded From is read whole', () => {
    const r = readOriginators(msg('From: "Alice', ' Example" <alice@ours.test>,', '\tbob@ours.test', '', ''));
    assert.deepEqual(r, { kind: 'ok', from: ['alice@ours.test', 'bob@ours.test'], sender: undefined });
  });
});
