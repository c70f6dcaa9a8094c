import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ehloReply, heloReply } from './ehlo.js';
import { formatReply } from '../mail/reply.js';

describe('ehloReply', () => {
  test('lists our extensions, with STARTTLS when offered', () => {
    assert.equal(
      formatReply(ehloReply({ hostname: 'mx.example', maxMessageSize: 1000, offerStartTls: true })),
      '250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n' +
        '250-SMTPUTF8\r\n250-CHUNKING\r\n250-DSN\r\n250 STARTTLS\r\n',
    );
  });

  test('no STARTTLS when not offered', () => {
    const text = formatReply(ehloReply({ hostname: 'mx.example', maxMessageSize: 1000, offerStartTls: false }));
    assert.doesNotMatch(text, /STARTTLS/);
    assert.match(text, /250 DSN\r\n$/);
  });

  test('AUTH lists the mechanisms offered, and is left out when there are none', () => {
    const offered = formatReply(
      ehloReply({ hostname: 'mx.example', maxMessageSize: 1000, offerStartTls: false, authMechanisms: ['SCRAM-SHA-256', 'PLAIN'] }),
    );
    assert.match(offered, /250 AUTH SCRAM-SHA-256 PLAIN\r\n$/);
    const none = formatReply(ehloReply({ hostname: 'mx.example', maxMessageSize: 1000, offerStartTls: true, authMechanisms: [] }));
    assert.doesNotMatch(none, /AUTH/);
  });

  test('HELO is our name alone', () => {
    assert.equal(formatReply(heloReply('mx.example')), '250 mx.example\r\n');
  });
});
