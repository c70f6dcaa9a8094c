import { test } from 'node:test';
import assert from 'node:assert/strict';
import { receivedProtocol } from './received-protocol.js';

test('RFC 3848 and RFC 6531 protocol names', () => {
  const cases: Array<[boolean, boolean, boolean, boolean, string]> = [
    [false, false, false, false, 'SMTP'],
    [false, true, true, true, 'SMTP'],
    [true, false, false, false, 'ESMTP'],
    [true, true, false, false, 'ESMTPS'],
    [true, false, true, false, 'ESMTPA'],
    [true, true, true, false, 'ESMTPSA'],
    [true, false, false, true, 'UTF8SMTP'],
    [true, true, true, true, 'UTF8SMTPSA'],
  ];
  for (const [esmtp, tls, authenticated, smtputf8, name] of cases) {
    assert.equal(receivedProtocol({ esmtp, tls, authenticated, smtputf8 }), name);
  }
});
