import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  authenticationResultsField,
  authservIdOf,
  dmarcResinfo,
  fold,
  formatResinfo,
  headerComment,
  headerValue,
  iprevResinfo,
  replaceAuthenticationResults,
} from './authentication-results.js';
import type { SenderAuthVerdict } from './verdict.js';

const VERDICT: SenderAuthVerdict = {
  spf: { result: 'pass', domain: 'example.com', resinfo: 'spf=pass smtp.mailfrom=example.com' },
  dkim: [
    { result: 'pass', domain: 'example.com', selector: 's1', resinfo: 'dkim=pass header.d=example.com header.s=s1' },
    { result: 'fail', domain: 'list.test', selector: 's2', resinfo: 'dkim=fail header.d=list.test header.s=s2' },
  ],
  dmarc: { result: 'pass', domain: 'example.com', policy: 'reject', pct: 100, comment: undefined },
  arc: { result: 'none', instance: undefined, sealer: undefined, sealerDmarc: undefined, resinfo: 'arc=none' },
  iprev: { result: 'pass', ip: '192.0.2.1', name: 'mail.example.com', comment: undefined },
};

describe('RFC 8601 syntax', () => {
  test('a value is a token when it can be, else a quoted-string with its quotes and backslashes escaped', () => {
    assert.equal(headerValue('example.com'), 'example.com');
    assert.equal(headerValue('alice@example.com'), '"alice@example.com"');
    assert.equal(headerValue('2001:db8::1'), '"2001:db8::1"');
    assert.equal(headerValue('a "b" \\c'), '"a \\"b\\" \\\\c"');
    assert.equal(headerValue('two\r\nlines'), '"two  lines"');
  });

  test('a comment escapes its parentheses, so text from DNS cannot close it early', () => {
    assert.equal(headerComment('p=reject) dkim=pass (x'), '(p=reject\\) dkim=pass \\(x)');
  });

  test('a resinfo leaves out absent properties', () => {
    assert.equal(formatResinfo('dmarc', 'fail', 'p=reject', [['header.from', 'a.test'], ['policy.dmarc', undefined]]), 'dmarc=fail (p=reject) header.from=a.test');
  });

  test('dmarc: pct and the applied policy, only for a fail', () => {
    assert.equal(
      dmarcResinfo({ result: 'fail', domain: 'a.test', policy: 'reject', pct: 50, comment: undefined }, 'quarantine'),
      'dmarc=fail (p=reject; pct=50) header.from=a.test policy.dmarc=quarantine',
    );
    assert.equal(dmarcResinfo(VERDICT.dmarc, undefined), 'dmarc=pass (p=reject) header.from=example.com');
    assert.equal(dmarcResinfo({ result: 'none', domain: 'b.test', policy: undefined, pct: 100, comment: undefined }, undefined), 'dmarc=none header.from=b.test');
  });

  test('iprev: the address as policy.iprev, quoted when it is IPv6', () => {
    assert.equal(iprevResinfo(VERDICT.iprev), 'iprev=pass (mail.example.com) policy.iprev=192.0.2.1');
    assert.equal(iprevResinfo({ result: 'fail', ip: '2001:db8::1', name: undefined, comment: 'no PTR record' }), 'iprev=fail (no PTR record) policy.iprev="2001:db8::1"');
  });

  test('the field: authserv-id, then one resinfo per line, every line at most 78 characters where spaces allow', () => {
    const field = authenticationResultsField('mx.example.net', VERDICT, undefined);
    assert.equal(
      field,
      [
        'Authentication-Results: mx.example.net;',
        ' spf=pass smtp.mailfrom=example.com;',
        ' dkim=pass header.d=example.com header.s=s1;',
        ' dkim=fail header.d=list.test header.s=s2;',
        ' dmarc=pass (p=reject) header.from=example.com;',
        ' arc=none;',
        ' iprev=pass (mail.example.com) policy.iprev=192.0.2.1',
        '',
      ].join('\r\n'),
    );
  });

  test('folding breaks at spaces only, and unfolding gives the line back', () => {
    const line = ` spf=pass (${'word '.repeat(40)}) smtp.mailfrom=example.com`;
    const folded = fold(line);
    for (const piece of folded.split('\r\n')) assert.ok(piece.length <= 78, piece);
    assert.ok(folded.split('\r\n').slice(1).every((p) => p.startsWith(' ')));
    assert.equal(folded.replace(/\r\n/g, ''), line);
    const unbreakable = ` dkim=pass header.b=${'x'.repeat(100)}`;
    assert.equal(fold(unbreakable).replace(/\r\n/g, ''), unbreakable);
  });
});

describe('authservIdOf', () => {
  test('the token or quoted-string first in the value, after white space and comments', () => {
    assert.equal(authservIdOf(' mx.example.net; spf=pass'), 'mx.example.net');
    assert.equal(authservIdOf(' mx.example.net 1; spf=pass'), 'mx.example.net');
    assert.equal(authservIdOf(' (a comment (nested\\)) ) mx.example.net;'), 'mx.example.net');
    assert.equal(authservIdOf(' "mx.example.net"; none'), 'mx.example.net');
    assert.equal(authservIdOf(' "mx.ex\\"ample"; none'), 'mx.ex"ample');
    assert.equal(authservIdOf(' mx.example.net;none'), 'mx.example.net');
  });

  test('nothing readable is undefined', () => {
    assert.equal(authservIdOf(' (unclosed mx.example.net;'), undefined);
    assert.equal(authservIdOf(' ; spf=pass'), undefined);
    assert.equal(authservIdOf(' "unterminated'), undefined);
  });
});

describe('replaceAuthenticationResults', () => {
  const ours = 'Authentication-Results: mx.example.net; none\r\n';
  const body = '\r\nbody line\r\nAuthentication-Results: mx.example.net; in the body\r\n';

  test('removes every field claiming our id (any case, folded, quoted, after a comment), keeps the rest byte for byte', () => {
    const head = [
      'Received: from a by b',
      'Authentication-Results: mx.example.net; dkim=pass header.d=bank.test',
      'Subject: caf\xe9',
      'authentication-results: (forged)',
      '\tMX.Example.Net; spf=pass',
      'Authentication-Results: "mx.example.net"; dmarc=pass',
      'Authentication-Results: other.example; spf=pass',
      'Authentication-Results: mx.example.net.evil.test; spf=pass',
      'From: a@b.test',
    ].join('\r\n');
    const message = Buffer.from(`${head}\r\n${body}`, 'latin1');
    const result = replaceAuthenticationResults(message, 'mx.example.net', ours);
    assert.equal(result.removed, 3);
    assert.equal(
      result.message.toString('latin1'),
      [
        'Authentication-Results: mx.example.net; none',
        'Received: from a by b',
        'Subject: caf\xe9',
        'Authentication-Results: other.example; spf=pass',
        'Authentication-Results: mx.example.net.evil.test; spf=pass',
        'From: a@b.test',
        '',
      ].join('\r\n') + body,
    );
  });

  test('a message without our fields only gains ours; bare LF line ends are read too', () => {
    const message = Buffer.from('Subject: x\nAuthentication-Results: mx.example.net; x\n\nbody\n');
    const result = replaceAuthenticationResults(message, 'mx.example.net', ours);
    assert.equal(result.removed, 1);
    assert.equal(result.message.toString(), `${ours}Subject: x\n\nbody\n`);
    const plain = replaceAuthenticationResults(Buffer.from('Subject: y\r\n\r\n'), 'mx.example.net', ours);
    assert.equal(plain.removed, 0);
    assert.equal(plain.message.toString(), `${ours}Subject: y\r\n\r\n`);
  });
});
