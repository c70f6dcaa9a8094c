import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_POLICY_AGE, mxMatchesPolicy, parsePolicy, parseStsRecord, type MtaStsPolicy } from './mta-sts-policy.js';

describe('parseStsRecord (RFC 8461 section 3.1)', () => {
  test('the id of the one v=STSv1 record, its strings joined', () => {
    assert.equal(parseStsRecord([['v=STSv1; id=20160831085700Z;']]), '20160831085700Z');
    assert.equal(parseStsRecord([['v=STSv1;', ' id=abc123']]), 'abc123');
    assert.equal(parseStsRecord([['v=spf1 -all'], ['v=STSv1; id=x1; ext=value']]), 'x1');
  });

  test('no policy: none, two, malformed, or without an id', () => {
    assert.equal(parseStsRecord([]), undefined);
    assert.equal(parseStsRecord([['v=spf1 -all']]), undefined);
    assert.equal(parseStsRecord([['v=STSv1; id=a'], ['v=STSv1; id=b']]), undefined);
    assert.equal(parseStsRecord([['v=STSv1']]), undefined);
    assert.equal(parseStsRecord([['v=STSv1x; id=a']]), undefined);
    assert.equal(parseStsRecord([['v=STSv1; id=has-dash']]), undefined);
    assert.equal(parseStsRecord([['v=STSv1; id=' + 'a'.repeat(33)]]), undefined);
    assert.equal(parseStsRecord([['v=STSv1; id=a; id=b']]), undefined);
    assert.equal(parseStsRecord([['v=STSv1; garbage']]), undefined);
  });
});

describe('parsePolicy (RFC 8461 section 3.2)', () => {
  test('the example of the RFC, CRLF or LF', () => {
    const text = 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n';
    const expected = { ok: true, policy: { mode: 'enforce', mx: ['mail.example.com', '*.example.net', 'backupmx.example.com'], maxAge: 604800 } };
    assert.deepEqual(parsePolicy(text), expected);
    assert.deepEqual(parsePolicy(text.replaceAll('\r\n', '\n')), expected);
  });

  test('unknown keys ignored, first of a repeated key wins, patterns normalized', () => {
    assert.deepEqual(parsePolicy('version: STSv1\nmode: testing\nmode: enforce\nfuture:  thing\nmx: MX.Bücher.Example.\nmax_age:86400\n'), {
      ok: true,
      policy: { mode: 'testing', mx: ['mx.xn--bcher-kva.example'], maxAge: 86400 },
    });
  });

  test('mode none needs no mx; max_age above a year is capped', () => {
    assert.deepEqual(parsePolicy('version: STSv1\nmode: none\nmax_age: 9999999999\n'), {
      ok: true,
      policy: { mode: 'none', mx: [], maxAge: MAX_POLICY_AGE },
    });
  });

  test('refused: wrong version, unknown mode, no max_age, no mx, bad pattern, not key-value', () => {
    const cases = [
      'version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n',
      'mode: enforce\nmx: a.example\nmax_age: 1\n',
      'version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmx: a.example\n',
      'version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n',
      'version: STSv1\nmode: enforce\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n',
      '<html>version: STSv1</html>\n',
    ];
    for (const text of cases) assert.equal(parsePolicy(text).ok, false, text);
  });
});

describe('mxMatchesPolicy (RFC 8461 section 4.1)', () => {
  const policy: MtaStsPolicy = { mode: 'enforce', mx: ['mail.example.com', '*.example.net'], maxAge: 1, id: 'x' };

  test('exact names, case and trailing dot aside', () => {
    assert.equal(mxMatchesPolicy(policy, 'mail.example.com'), true);
    assert.equal(mxMatchesPolicy(policy, 'MAIL.Example.COM.'), true);
    assert.equal(mxMatchesPolicy(policy, 'mail2.example.com'), false);
    assert.equal(mxMatchesPolicy(policy, 'example.com'), false);
  });

  test('a wildcard covers exactly one leftmost label', () => {
    assert.equal(mxMatchesPolicy(policy, 'mx1.example.net'), true);
    assert.equal(mxMatchesPolicy(policy, 'example.net'), false);
    assert.equal(mxMatchesPolicy(policy, 'a.b.example.net'), false);
    assert.equal(mxMatchesPolicy(policy, 'mx1.badexample.net'), false);
    assert.equal(mxMatchesPolicy(policy, 'mx1.example.net.evil.test'), false);
  });

  test('IDN hosts compare by their A-labels', () => {
    const idn: MtaStsPolicy = { ...policy, mx: ['*.xn--bcher-kva.example'] };
    assert.equal(mxMatchesPolicy(idn, 'mx.bücher.example'), true);
  });
});
