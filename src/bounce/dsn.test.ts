import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDsn, type DsnInput } from './dsn.js';

const original = Buffer.from('Received: from a\r\nFrom: alice@example.test\r\nSubject: hello\r\n\r\nthe body\r\n');

const failed: DsnInput = {
  reportingMta: 'mx.example.test',
  to: 'alice@example.test',
  queueId: 'Q1AAAAAAAAAA',
  envid: 'ENV-42',
  arrivalDate: Date.UTC(2025, 0, 2, 3, 4, 5),
  recipients: [
    {
      address: 'carol@remote.test',
      orcpt: { addrType: 'rfc822', address: 'Carol@Remote.test' },
      action: 'failed',
      status: '5.1.1',
      remoteHost: 'mx.remote.test',
      reply: '550 5.1.1 no such user',
      reason: 'the receiving server says this address does not exist.',
      lastAttemptAt: Date.UTC(2025, 0, 2, 3, 5, 0),
    },
  ],
  original,
  now: Date.UTC(2025, 0, 2, 3, 5, 1),
};

/** The body parts between the boundaries, each split into header and content. */
function parts(dsn: string): { head: string; body: string }[] {
  const boundary = /boundary="([^"]+)"/.exec(dsn)?.[1];
  assert.ok(boundary, 'multipart boundary');
  const sections = dsn.split(`--${boundary}`);
  assert.ok(sections.at(-1)!.startsWith('--'), 'closing boundary');
  return sections.slice(1, -1).map((s) => {
    const at = s.indexOf('\r\n\r\n');
    return { head: s.slice(2, at), body: s.slice(at + 4) };
  });
}

test('a failure DSN is multipart/report with words, delivery-status and the whole message', () => {
  const dsn = buildDsn(failed).toString('utf8');
  const [header] = dsn.split('\r\n\r\n');
  assert.match(header!, /^From: Mail Delivery System <MAILER-DAEMON@mx\.example\.test>\r\n/);
  assert.match(header!, /\r\nTo: <alice@example\.test>\r\n/);
  assert.match(header!, /\r\nAuto-Submitted: auto-replied\r\n/);
  assert.match(header!, /Content-Type: multipart\/report; report-type=delivery-status;/);
  const [text, status, returned] = parts(dsn);
  assert.match(text!.head, /text\/plain; charset=utf-8/);
  assert.match(text!.body, /<carol@remote\.test>: the receiving server says this address does not exist\./);
  assert.match(text!.body, /The server mx\.remote\.test said: 550 5\.1\.1 no such user/);
  assert.match(text!.body, /What you can do: check the address for typos/);
  assert.match(status!.head, /^Content-Type: message\/delivery-status/);
  const [perMessage, perRecipient] = status!.body.split('\r\n\r\n');
  assert.equal(
    perMessage,
    'Reporting-MTA: dns; mx.example.test\r\nOriginal-Envelope-Id: ENV-42\r\nArrival-Date: Thu, 2 Jan 2025 03:04:05 +0000',
  );
  assert.equal(
    perRecipient,
    [
      'Original-Recipient: rfc822;Carol@Remote.test',
      'Final-Recipient: rfc822; carol@remote.test',
      'Action: failed',
      'Status: 5.1.1',
      'Remote-MTA: dns; mx.remote.test',
      'Diagnostic-Code: smtp; 550 5.1.1 no such user',
      'Last-Attempt-Date: Thu, 2 Jan 2025 03:05:00 +0000',
    ].join('\r\n'),
  );
  assert.match(returned!.head, /^Content-Type: message\/rfc822/);
  assert.equal(returned!.body, `${original.toString()}\r\n`);
});

test('RET=HDRS, a large message, and delay warnings return only the header', () => {
  for (const input of [
    { ...failed, ret: 'HDRS' as const },
    { ...failed, maxReturnedBytes: 10 },
    { ...failed, recipients: [{ ...failed.recipients[0]!, action: 'delayed' as const, status: '4.2.0', willRetryUntil: Date.UTC(2025, 0, 7) }] },
  ]) {
    const [, , returned] = parts(buildDsn(input).toString('utf8'));
    assert.match(returned!.head, /^Content-Type: text\/rfc822-headers/);
    assert.ok(!returned!.body.includes('the body'));
    assert.ok(returned!.body.includes('Subject: hello'));
  }
});

test('a delay warning says it is still trying and until when', () => {
  const dsn = buildDsn({
    ...failed,
    envid: undefined,
    recipients: [{ ...failed.recipients[0]!, action: 'delayed', status: '4.2.0', willRetryUntil: Date.UTC(2025, 0, 7) }],
  }).toString('utf8');
  assert.match(dsn, /Subject: Delayed Mail \(still being retried\)/);
  assert.match(dsn, /you do not need to send the message again/);
  assert.match(dsn, /Action: delayed\r\nStatus: 4\.2\.0/);
  assert.match(dsn, /Will-Retry-Until: Tue, 7 Jan 2025 00:00:00 \+0000/);
  assert.ok(!dsn.includes('Original-Envelope-Id'));
});

test('text from the remote server cannot add header fields to the report', () => {
  const dsn = buildDsn({
    ...failed,
    recipients: [{ ...failed.recipients[0]!, reply: '550 5.1.1 no\r\nAction: delivered', remoteHost: 'mx\r\nX-Evil: 1' }],
  }).toString('utf8');
  assert.ok(!/\r\nAction: delivered/.test(dsn));
  assert.ok(!/\r\nX-Evil/.test(dsn));
});

test('one DSN reports one kind of outcome', () => {
  assert.throws(() =>
    buildDsn({ ...failed, recipients: [failed.recipients[0]!, { ...failed.recipients[0]!, action: 'delayed' }] }),
  );
});
