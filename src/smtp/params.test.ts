import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeXtext, parseMailParams, parseRcptParams } from './params.js';
import { SmtpError } from '../mail/reply.js';

function refusal(fn: () => unknown): [number, string] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SmtpError);
    return [err.reply.code, err.reply.enhanced ?? ''];
  }
  assert.fail('expected a refusal');
}

describe('parseMailParams', () => {
  test('every supported parameter', () => {
    assert.deepEqual(parseMailParams('SIZE=1000 body=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2BZ AUTH=<>'), {
      size: 1000,
      body: '8BITMIME',
      smtputf8: true,
      ret: 'HDRS',
      envid: 'QQ+Z',
    });
    assert.deepEqual(parseMailParams(''), {});
  });

  const refused: Array<[string, number]> = [
    ['BODY=BINARYMIME', 555],
    ['BODY=9BIT', 555],
    ['SIZE=', 555],
    ['SIZE=abc', 555],
    ['SIZE', 555],
    ['SIZE=1 SIZE=2', 555],
    ['size=1 SIZE=1', 555],
    ['FOO=bar', 555],
    ['=x', 555],
    ['SMTPUTF8=yes', 555],
    ['RET=ALL', 555],
    ['ENVID=a+zz', 555],
    [`ENVID=${'x'.repeat(101)}`, 555],
    ['AUTH', 555],
    ['NOTIFY=NEVER', 555],
  ];
  for (const [text, code] of refused) {
    test(`refuses ${text.slice(0, 30)} with ${code} 5.5.4`, () => {
      assert.deepEqual(refusal(() => parseMailParams(text)), [code, '5.5.4']);
    });
  }
});

describe('parseRcptParams', () => {
  test('NOTIFY and ORCPT', () => {
    assert.deepEqual(parseRcptParams('NOTIFY=success,Delay ORCPT=rfc822;a+2Bb@example.com'), {
      notify: ['SUCCESS', 'DELAY'],
      orcpt: { addrType: 'rfc822', address: 'a+b@example.com' },
    });
    assert.deepEqual(parseRcptParams('NOTIFY=NEVER'), { notify: [] });
  });

  const refused: Array<[string, number]> = [
    ['NOTIFY=NEVER,SUCCESS', 501],
    ['NOTIFY=SOMETIMES', 501],
    ['NOTIFY', 501],
    ['ORCPT=rfc822', 555],
    ['ORCPT=;a@b', 555],
    ['ORCPT=rfc822;', 555],
    ['SIZE=10', 555],
    ['NOTIFY=NEVER NOTIFY=NEVER', 555],
  ];
  for (const [text, code] of refused) {
    test(`refuses ${text} with ${code} 5.5.4`, () => {
      assert.deepEqual(refusal(() => parseRcptParams(text)), [code, '5.5.4']);
    });
  }
});

describe('decodeXtext', () => {
  const cases: Array<[string, string | undefined]> = [
    ['plain', 'plain'],
    ['a+2Bb', 'a+b'],
    ['a+3Db', 'a=b'],
    ['+C3+A9', 'é'],
    ['a+b', undefined],
    ['a=b', undefined],
    ['a b', undefined],
    ['+FF', undefined],
    ['', ''],
  ];
  for (const [text, decoded] of cases) {
    test(JSON.stringify(text), () => assert.equal(decodeXtext(text), decoded));
  }
});
