import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rfc5322Date } from '../mail/date.js';
import { receivedHeader, headerToken } from './received-header.js';
import { testEnvelope } from '../../test/support/test-envelope.js';
import type { Envelope } from '../mail/envelope.js';

const one = testEnvelope([{ address: 'alice@example.test', mailboxes: ['alice@example.test'] }]);

describe('receivedHeader', () => {
  test('names the client, us, the protocol, the queue id, TLS, the one recipient and the date', () => {
    const h = receivedHeader(one, { hostname: 'mx.example.test', queueId: '0VbgU2wk000Mropi' });
    assert.equal(
      h,
      'Received: from client.remote.test (unknown [192.0.2.10])\r\n' +
        '\tby mx.example.test (Postern) with ESMTPS id 0VbgU2wk000Mropi\r\n' +
        '\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n' +
        '\tfor <alice@example.test>; Thu, 2 Jan 2025 03:04:05 +0000\r\n',
    );
  });

  test('leaves out "for" with several recipients and TLS details without TLS', () => {
    const env: Envelope = {
      ...testEnvelope([
        { address: 'a@example.test', mailboxes: [] },
        { address: 'b@example.test', mailboxes: [] },
      ]),
    };
    const plain: Envelope = { ...env, arrival: { ...env.arrival, tls: undefined, protocol: 'ESMTP', clientIp: '::ffff:198.51.100.7' } };
    const h = receivedHeader(plain, { hostname: 'mx.example.test', queueId: '0VbgU2wk000Mropi', reverseName: 'client.remote.test' });
    assert.equal(
      h,
      'Received: from client.remote.test (client.remote.test [198.51.100.7])\r\n' +
        '\tby mx.example.test (Postern) with ESMTP id 0VbgU2wk000Mropi;\r\n' +
        '\tThu, 2 Jan 2025 03:04:05 +0000\r\n',
    );
  });

  test('names the authenticated account only when asked to', () => {
    const env: Envelope = { ...one, arrival: { ...one.arrival, protocol: 'ESMTPSA', authUser: 'bob@example.test' } };
    const opts = { hostname: 'mx.example.test', queueId: '0VbgU2wk000Mropi' };
    assert.equal(
      receivedHeader(env, { ...opts, recordAuthUser: true }),
      'Received: from client.remote.test (unknown [192.0.2.10])\r\n' +
        '\tby mx.example.test (Postern) with ESMTPSA id 0VbgU2wk000Mropi\r\n' +
        '\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n' +
        '\t(authenticated as bob@example.test)\r\n' +
        '\tfor <alice@example.test>; Thu, 2 Jan 2025 03:04:05 +0000\r\n',
    );
    assert.doesNotMatch(receivedHeader(env, opts), /authenticated/);
    assert.doesNotMatch(receivedHeader(one, { ...opts, recordAuthUser: true }), /authenticated/);
  });

  test('writes IPv6 clients as RFC 5321 address literals', () => {
    const env: Envelope = { ...one, arrival: { ...one.arrival, clientIp: '2001:db8::1' } };
    assert.match(receivedHeader(env, { hostname: 'h', queueId: '0VbgU2wk000Mropi' }), /\(unknown \[IPv6:2001:db8::1\]\)/);
  });

  test('client-controlled text cannot inject header lines or end our comment', () => {
    const hostile = 'evil\r\nX-Injected: yes (x)<y>';
    const env: Envelope = {
      ...testEnvelope([{ address: 'a\r\nBcc: victim@x.test@example.test', mailboxes: [] }]),
      arrival: { ...one.arrival, helo: hostile },
    };
    const h = receivedHeader(env, { hostname: 'mx.example.test', queueId: '0VbgU2wk000Mropi' });
    const lines = h.split('\r\n');
    assert.equal(lines.at(-1), '', 'ends with CRLF');
    for (const line of lines.slice(1, -1)) assert.ok(line.startsWith('\t'), `every continuation is folded: ${JSON.stringify(line)}`);
    assert.ok(!/[\r\n]/.test(h.replace(/\r\n\t/g, '').replace(/\r\n$/, '')), 'no stray CR or LF');
    assert.ok(h.includes('from evil??X-Injected:?yes??x??y?'));
  });

  test('keeps lines within 78 characters where the parts allow it', () => {
    const env: Envelope = { ...one, arrival: { ...one.arrival, helo: 'a-rather-long-client-name.with.many.labels.example.test' } };
    const h = receivedHeader(env, { hostname: 'a-long-mail-exchanger-name.example.test', queueId: '0VbgU2wk000Mropi' });
    for (const line of h.split('\r\n')) assert.ok(line.length <= 78, `${line.length}: ${line}`);
  });

  test('dates follow RFC 5322 3.3', () => {
    assert.equal(rfc5322Date(new Date(Date.UTC(2024, 1, 29, 23, 59, 7))), 'Thu, 29 Feb 2024 23:59:07 +0000');
  });

  test('headerToken replaces every control character, including NUL and DEL', () => {
    assert.equal(headerToken('a\u0000b\u007fc\td'), 'a?b?c?d');
  });
});
