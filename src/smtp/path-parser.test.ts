import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hasNonAscii, parsePathArgument } from './path-parser.js';

const forward = { allowNull: false, allowPostmaster: true };
const reverse = { allowNull: true, allowPostmaster: false };

describe('parsePathArgument', () => {
  const good: Array<[string, string, string, string]> = [
    // [input, local, domain, params]
    ['<alice@example.com>', 'alice', 'example.com', ''],
    ['<a.b+tag@Sub.Example.COM> NOTIFY=NEVER', 'a.b+tag', 'Sub.Example.COM', 'NOTIFY=NEVER'],
    ['<@relay.example,@other.example:bob@example.org>', 'bob', 'example.org', ''],
    ['<"john doe"@example.com>', '"john doe"', 'example.com', ''],
    ['<"a@b"@example.com>', '"a@b"', 'example.com', ''],
    ['<"q\\"x"@example.com>', '"q\\"x"', 'example.com', ''],
    ['<x@[192.0.2.1]>', 'x', '[192.0.2.1]', ''],
    ['<x@[IPv6:2001:db8::1]>', 'x', '[IPv6:2001:db8::1]', ''],
    ["<!#$%&'*+-/=?^_`{|}~@example.com>", "!#$%&'*+-/=?^_`{|}~", 'example.com', ''],
    ['<jörg@bücher.de>', 'jörg', 'bücher.de', ''],
    ['<a@b>  SIZE=1', 'a', 'b', 'SIZE=1'],
  ];
  for (const [input, local, domain, params] of good) {
    test(`accepts ${input}`, () => {
      assert.deepEqual(parsePathArgument(input, forward), { mailbox: { local, domain }, postmaster: false, params });
    });
  }

  const bad = [
    '',
    'alice@example.com',
    '<alice@example.com',
    '<alice>',
    '<@example.com>',
    '<a..b@example.com>',
    '<.a@example.com>',
    '<a.@example.com>',
    '<a b@example.com>',
    '<"unterminated@example.com>',
    '<a@-example.com>',
    '<a@example-.com>',
    '<a@exa mple.com>',
    '<a@[300.1.1.1]>',
    '<a@[IPv6:zz::1]>',
    '<a@[tag:stuff]>',
    '<a@example.com>SIZE=1',
    '<@relay.example:>',
    '<@relay.example bob@example.org>',
    `<${'a'.repeat(65)}@example.com>`,
    `<a@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(63)}>`,
    '<>',
  ];
  for (const input of bad) {
    test(`refuses ${JSON.stringify(input)}`, () => {
      assert.equal(parsePathArgument(input, forward), undefined);
    });
  }

  test('null reverse path only where allowed', () => {
    assert.deepEqual(parsePathArgument('<> BODY=8BITMIME', reverse), {
      mailbox: undefined,
      postmaster: false,
      params: 'BODY=8BITMIME',
    });
    assert.equal(parsePathArgument('<>', forward), undefined);
  });

  test('<Postmaster> without a domain, any case, only for RCPT', () => {
    assert.deepEqual(parsePathArgument('<PostMaster>', forward), { mailbox: undefined, postmaster: true, params: '' });
    assert.equal(parsePathArgument('<Postmaster>', reverse), undefined);
  });

  test('hasNonAscii', () => {
    assert.equal(hasNonAscii('a@b'), false);
    assert.equal(hasNonAscii('jörg@b'), true);
  });
});
