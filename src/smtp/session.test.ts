import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { reply } from '../mail/reply.js';
import type { AuthenticatedMessage, MessageAuthenticator, SessionConfig, SessionInfo } from './session-host.js';
import type { Envelope } from '../mail/envelope.js';
import type { SenderAuthReport } from '../sender-auth/verdict.js';
import { blamesClient } from './session.js';
import { EHLO, ENVELOPE, TLS, codes, converse, feed, harness, parseReplies, settle, type Harness } from '../../test/support/test-session.js';
import { cutAt } from '../../test/support/session-feed.js';

// ---- tests ----------------------------------------------------------------------------------

describe('SmtpSession: greeting, EHLO, HELO', () => {
  test('EHLO lists the extensions, STARTTLS while TLS is not up', async () => {
    const { replies } = await converse(EHLO);
    assert.equal(
      replies[0],
      '250-mx.example|250-PIPELINING|250-SIZE 10000|250-8BITMIME|250-ENHANCEDSTATUSCODES|250-SMTPUTF8|' +
        '250-CHUNKING|250-DSN|250 STARTTLS',
    );
  });

  test('no STARTTLS on an implicit TLS listener or when not configured', async () => {
    for (const options of [{ tls: TLS }, { config: { starttls: false } }]) {
      const { replies } = await converse(EHLO, options);
      assert.doesNotMatch(replies[0] ?? '', /STARTTLS/);
    }
  });

  test('HELO, and EHLO/HELO without a name', async () => {
    const { replies } = await converse('HELO client\r\nEHLO\r\nHELO \r\n');
    assert.deepEqual(codes(replies), ['250', '501 5.5.4', '501 5.5.4']);
    assert.equal(replies[0], '250 mx.example');
  });

  test('a client that talks before the greeting is refused', () => {
    const h = harness();
    h.session.receive(Buffer.from(EHLO));
    h.session.start();
    assert.equal(h.io.output, '554 5.5.1 mx.example Protocol error: talked before the greeting\r\n');
    assert.ok(h.io.closed && h.session.closed);
  });

  test('EHLO again resets the transaction', async () => {
    const { replies, session } = await converse(`${ENVELOPE}EHLO again\r\nDATA\r\n`);
    assert.equal(codes(replies).at(-1), '503 5.5.1');
    assert.equal(session.inTransaction, false);
  });
});

describe('SmtpSession: simple commands', () => {
  const cases: Array<[string, string]> = [
    ['NOOP', '250 2.0.0'],
    ['noop whatever', '250 2.0.0'],
    ['RSET', '250 2.0.0'],
    ['VRFY bob', '252 2.5.0'],
    ['EXPN staff', '502 5.5.1'],
    ['HELP', '214 2.0.0'],
    ['FOO', '500 5.5.2'],
    ['', '500 5.5.2'],
    ['DATA please', '501 5.5.4'],
    ['VRFY', '501 5.5.4'],
    ['MAIL <a@b>', '501 5.5.4'],
  ];
  for (const [line, expected] of cases) {
    test(`${JSON.stringify(line)} -> ${expected}`, async () => {
      const { replies } = await converse(`${EHLO}${line}\r\n`);
      assert.deepEqual(codes(replies.slice(1)), [expected]);
    });
  }

  test('VRFY never discloses users', async () => {
    const { replies } = await converse('VRFY root\r\n');
    assert.equal(replies[0], '252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery');
  });

  test('QUIT answers 221 and closes; nothing after it is read', async () => {
    const { replies, io, session } = await converse(`${EHLO}quit\r\nNOOP\r\n`);
    assert.deepEqual(codes(replies.slice(1)), ['221 2.0.0']);
    assert.ok(io.closed && session.closed);
  });

  test('RSET ends the transaction', async () => {
    const { replies, session } = await converse(`${ENVELOPE}RSET\r\nDATA\r\n`);
    assert.deepEqual(codes(replies.slice(-2)), ['250 2.0.0', '503 5.5.1']);
    assert.equal(session.inTransaction, false);
  });
});

describe('SmtpSession: command lines', () => {
  const cases: Array<[string, string, string]> = [
    ['bare LF', 'NOOP\nNOOP\r\n', '500 5.5.2 Bare CR or LF in command; lines must end with CRLF'],
    ['bare CR', 'NOOP\rNOOP\r\n', '500 5.5.2 Bare CR or LF in command; lines must end with CRLF'],
    ['NUL', 'NO\0OP\r\n', '500 5.5.2 NUL character in command'],
    ['too long', `NOOP ${'x'.repeat(600)}\r\n`, '500 5.5.2 Line too long'],
  ];
  for (const [name, input, expected] of cases) {
    test(`${name}: one 500 5.5.2, then the session carries on`, async () => {
      const { replies } = await converse(`${input}NOOP\r\n`);
      assert.deepEqual(replies, [expected, '250 2.0.0 OK']);
    });
  }

  test('MAIL hidden behind a bare LF is not executed', async () => {
    const { replies, policy } = await converse(`${EHLO}NOOP\nMAIL FROM:<a@example.org>\r\n`);
    assert.deepEqual(codes(replies.slice(1)), ['500 5.5.2']);
    assert.equal(policy.senders.length, 0);
  });
});

describe('SmtpSession: sequence errors are 503 5.5.1', () => {
  const cases: Array<[string, string]> = [
    ['MAIL before EHLO', 'MAIL FROM:<a@example.org>\r\n'],
    ['RCPT before EHLO', 'RCPT TO:<a@example.org>\r\n'],
    ['nested MAIL', `${EHLO}MAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\n`],
    ['RCPT before MAIL', `${EHLO}RCPT TO:<b@example.com>\r\n`],
    ['DATA before MAIL', `${EHLO}DATA\r\n`],
    ['DATA before RCPT', `${EHLO}MAIL FROM:<a@example.org>\r\nDATA\r\n`],
    ['DATA after BDAT', `${ENVELOPE}BDAT 3\r\nabcDATA\r\n`],
    ['RCPT after BDAT', `${ENVELOPE}BDAT 3\r\nabcRCPT TO:<c@example.com>\r\n`],
    ['BDAT before RCPT', `${EHLO}MAIL FROM:<a@example.org>\r\nBDAT 4 LAST\r\nNOOP`],
  ];
  for (const [name, input] of cases) {
    test(name, async () => {
      const { replies } = await converse(input);
      assert.equal(codes(replies).at(-1), '503 5.5.1');
    });
  }

  test('a refused BDAT still has its octets consumed', async () => {
    const { replies } = await converse(`${EHLO}BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n`);
    assert.deepEqual(codes(replies.slice(1)), ['503 5.5.1', '250 2.0.0']);
  });
});

describe('SmtpSession: MAIL FROM', () => {
  const cases: Array<[string, string]> = [
    ['MAIL FROM:<alice@example.org>', '250 2.1.0'],
    ['mail from: <alice@example.org>', '250 2.1.0'],
    ['MAIL FROM:<>', '250 2.1.0'],
    ['MAIL FROM:<a@b> SIZE=10000 BODY=8BITMIME RET=FULL ENVID=x+2By AUTH=<>', '250 2.1.0'],
    ['MAIL FROM:<a@b> SIZE=10001', '552 5.3.4'],
    ['MAIL FROM:<a@b> BODY=BINARYMIME', '555 5.5.4'],
    ['MAIL FROM:<a@b> XFOO=1', '555 5.5.4'],
    ['MAIL FROM:<a@b> SIZE=1 SIZE=1', '555 5.5.4'],
    ['MAIL FROM:<a@b> SIZE=big', '555 5.5.4'],
    ['MAIL FROM:a@b', '501 5.1.7'],
    ['MAIL FROM:<a b@c>', '501 5.1.7'],
    ['MAIL FROM:  <a@b>', '501 5.1.7'],
    ['MAIL FROM:<jörg@example.org>', '553 5.6.7'],
    ['MAIL FROM:<jörg@example.org> SMTPUTF8', '250 2.1.0'],
    ['MAIL FROM:<a@bücher.example>', '553 5.6.7'],
    ['MAIL FROM:<blocked@example.org>', '550 5.7.1'],
    ['MAIL FROM:<error@example.org>', '451 4.3.0'],
  ];
  for (const [line, expected] of cases) {
    test(`${line} -> ${expected}`, async () => {
      const { replies } = await converse(`${EHLO}${line}\r\n`);
      assert.deepEqual(codes(replies.slice(1)), [expected]);
    });
  }

  test('the policy sees the sender with its domain normalized, and the parameters', async () => {
    const { policy } = await converse(`${EHLO}MAIL FROM:<Alice@Example.ORG> BODY=8BITMIME ENVID=a+2Bb\r\n`);
    assert.equal(policy.senders[0]?.sender, 'Alice@example.org');
    assert.deepEqual(policy.senders[0]?.params, { body: '8BITMIME', envid: 'a+b' });
    assert.equal(policy.senders[0]?.info.helo, 'client.example');
    assert.equal(policy.senders[0]?.info.clientIp, '192.0.2.7');
  });

  test('parameters need EHLO', async () => {
    const { replies } = await converse('HELO client\r\nMAIL FROM:<a@b> SIZE=1\r\nMAIL FROM:<a@b>\r\n');
    assert.deepEqual(codes(replies.slice(1)), ['555 5.5.4', '250 2.1.0']);
  });

  test('a refused sender leaves no transaction', async () => {
    const { session } = await converse(`${EHLO}MAIL FROM:<blocked@example.org>\r\n`);
    assert.equal(session.inTransaction, false);
  });
});

describe('SmtpSession: RCPT TO', () => {
  const mail = `${EHLO}MAIL FROM:<alice@example.org>\r\n`;
  const cases: Array<[string, string]> = [
    ['RCPT TO:<bob@example.com>', '250 2.1.5'],
    ['RCPT TO: <bob@example.com>', '250 2.1.5'],
    ['RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com', '250 2.1.5'],
    ['RCPT TO:<bob@example.com> NOTIFY=NEVER,DELAY', '501 5.5.4'],
    ['RCPT TO:<bob@example.com> FOO=1', '555 5.5.4'],
    ['RCPT TO:<bob>', '501 5.1.3'],
    ['RCPT TO:<>', '501 5.1.3'],
    ['RCPT TO:bob@example.com', '501 5.1.3'],
    ['RCPT TO:<unknown@example.com>', '550 5.1.1'],
    ['RCPT TO:<custom@example.com>', '251 2.1.5'],
    ['RCPT TO:<jörg@example.com>', '553 5.6.7'],
    ['RCPT TO:<a@bücher.example>', '553 5.6.7'],
  ];
  for (const [line, expected] of cases) {
    test(`${line} -> ${expected}`, async () => {
      const { replies } = await converse(`${mail}${line}\r\n`);
      assert.deepEqual(codes(replies.slice(2)), [expected]);
    });
  }

  test('what the policy is asked', async () => {
    const { policy } = await converse(
      `${mail}RCPT TO:<@relay.example,@b.example:bob@Example.COM>\r\nRCPT TO:<"odd@local"@example.com>\r\n` +
        'RCPT TO:<x@[192.0.2.1]>\r\nRCPT TO:<Postmaster>\r\n',
      { limits: { maxRecipients: 10 } },
    );
    assert.deepEqual(
      policy.recipients.map((r) => r.recipient),
      ['bob@example.com', '"odd@local"@example.com', 'x@[192.0.2.1]', 'postmaster'],
    );
  });

  test('UTF-8 addresses with SMTPUTF8', async () => {
    const { replies, policy } = await converse(
      Buffer.from(`${EHLO}MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<ünal@bücher.example>\r\n`),
    );
    assert.deepEqual(codes(replies.slice(1)), ['250 2.1.0', '250 2.1.5']);
    assert.equal(policy.recipients[0]?.recipient, 'ünal@xn--bcher-kva.example');
  });

  test('more than maxRecipients: 452 4.5.3', async () => {
    const rcpts = ['a', 'b', 'c', 'd'].map((x) => `RCPT TO:<${x}@example.com>\r\n`).join('');
    const { replies, policy } = await converse(`${mail}${rcpts}`);
    assert.deepEqual(codes(replies.slice(2)), ['250 2.1.5', '250 2.1.5', '250 2.1.5', '452 4.5.3']);
    assert.equal(policy.recipients.length, 3);
  });
});

/** Refuses messages containing "SPOOFED", adds a header and quarantines the others; remembers what it saw. */
class FakeAuthenticator implements MessageAuthenticator {
  seen: Array<{ info: SessionInfo; message: string }> = [];
  readonly report = { action: 'deliver', reason: undefined, removedFields: 0 } as unknown as SenderAuthReport;
  async authenticate(info: SessionInfo, envelope: Envelope, message: Buffer): Promise<AuthenticatedMessage> {
    this.seen.push({ info, message: message.toString('latin1') });
    if (message.includes('SPOOFED')) return { kind: 'refuse', reply: reply(550, '5.7.1', 'Message rejected: DMARC'), report: this.report };
    return {
      kind: 'accept',
      envelope: { ...envelope, quarantine: true },
      message: Buffer.concat([Buffer.from('Authentication-Results: mx.example; none\r\n'), message]),
      report: this.report,
    };
  }
}

describe('SmtpSession: sender authentication after DATA', () => {
  test('what the authenticator returns is stored, and its report goes into the event', async () => {
    const authenticator = new FakeAuthenticator();
    const { replies, sink, events } = await converse(`${ENVELOPE}DATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n`, { authenticator });
    assert.equal(replies.at(-1), '250 2.0.0 OK: queued as Q00000000001');
    assert.equal(authenticator.seen[0]?.message, 'Subject: hi\r\n\r\nbody\r\n');
    assert.equal(sink.messages[0]?.message, 'Authentication-Results: mx.example; none\r\nSubject: hi\r\n\r\nbody\r\n');
    assert.equal(sink.messages[0]?.envelope.quarantine, true);
    assert.equal(events[0]?.senderAuth, authenticator.report);
  });

  test('its refusal is the reply after DATA: nothing is stored, the event has the report, the session goes on', async () => {
    const authenticator = new FakeAuthenticator();
    const { replies, sink, events } = await converse(`${ENVELOPE}DATA\r\nSubject: SPOOFED\r\n\r\nx\r\n.\r\nNOOP\r\n`, { authenticator });
    assert.deepEqual(replies.slice(-2), ['550 5.7.1 Message rejected: DMARC', '250 2.0.0 OK']);
    assert.equal(sink.messages.length, 0);
    assert.equal(events[0]?.queueId, undefined);
    assert.equal(events[0]?.senderAuth, authenticator.report);
  });

  test('a message the policy refuses never reaches it', async () => {
    const authenticator = new FakeAuthenticator();
    const { replies } = await converse(`${ENVELOPE}DATA\r\nSubject: FORGED\r\n\r\nx\r\n.\r\n`, { authenticator });
    assert.equal(replies.at(-1), '553 5.7.1 Header From not owned');
    assert.equal(authenticator.seen.length, 0);
  });
});

describe('SmtpSession: DATA', () => {
  test('an alias keeps its remote forwards in the envelope; other recipients have none', async () => {
    const { sink } = await converse(`${EHLO}MAIL FROM:<alice@example.org>\r\nRCPT TO:<alias@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n`);
    assert.deepEqual(sink.messages[0]?.envelope.recipients, [
      { address: 'alias@example.com', params: {}, mailboxes: ['bob@example.com'], forwards: ['carol@elsewhere.example'] },
      { address: 'bob@example.com', params: {}, mailboxes: ['bob@example.com'] },
    ]);
  });

  test('a message is stored and queued, with its envelope', async () => {
    const { replies, sink, events } = await converse(
      `${ENVELOPE}DATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n`,
    );
    assert.deepEqual(replies.slice(3), [
      '354 End data with <CR><LF>.<CR><LF>',
      '250 2.0.0 OK: queued as Q00000000001',
      '221 2.0.0 mx.example closing connection',
    ]);
    assert.equal(sink.messages[0]?.message, 'Subject: hi\r\n\r\n.dot\r\nbody\r\n');
    assert.deepEqual(sink.messages[0]?.envelope, {
      sender: 'alice@example.org',
      mailParams: {},
      recipients: [{ address: 'bob@example.com', params: {}, mailboxes: ['bob@example.com'] }],
      arrival: {
        clientIp: '192.0.2.7',
        clientPort: 40000,
        helo: 'client.example',
        protocol: 'ESMTP',
        listener: 'mx',
        tls: undefined,
        authUser: undefined,
        receivedAt: 1_700_000_000_000,
      },
    });
    assert.deepEqual(events, [
      {
        queueId: 'Q00000000001',
        sender: 'alice@example.org',
        recipients: ['bob@example.com'],
        size: 27,
        outcome: reply(250, '2.0.0', 'OK: queued as Q00000000001'),
        authUser: undefined,
      },
    ]);
  });

  test("a message's 250 is written before the message is reported for the log", async () => {
    // The client waits for the 250; the log line need not go first.
    const { writtenAtEvent, output } = await converse(`${ENVELOPE}DATA\r\nx\r\n.\r\n`);
    assert.equal(writtenAtEvent.length, 1);
    assert.match(writtenAtEvent[0] ?? '', /250 2\.0\.0 OK: queued as Q00000000001\r\n$/);
    assert.equal(writtenAtEvent[0], output);
  });

  test('a command pipelined after a message is acted on only once the message is reported', async () => {
    const { replies, writtenAtEvent, output } = await converse(`${ENVELOPE}DATA\r\nx\r\n.\r\nNOOP\r\n`);
    assert.match(replies.at(-2) ?? '', /queued as/);
    assert.equal(codes(replies).at(-1), '250 2.0.0');
    // When it was reported, the NOOP's reply was not written (nor, pipelined, the 250 before it).
    assert.equal(writtenAtEvent.length, 1);
    assert.ok(output.startsWith(writtenAtEvent[0] ?? '\u0000'));
    assert.doesNotMatch(writtenAtEvent[0] ?? '', /queued as/);
  });

  test('the protocol name: SMTP after HELO, UTF8SMTPS with SMTPUTF8 over TLS', async () => {
    const helo = await converse('HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n');
    assert.equal(helo.sink.messages[0]?.envelope.arrival.protocol, 'SMTP');
    const utf8 = await converse(`${EHLO}MAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n`, { tls: TLS });
    assert.equal(utf8.sink.messages[0]?.envelope.arrival.protocol, 'UTF8SMTPS');
    assert.deepEqual(utf8.sink.messages[0]?.envelope.arrival.tls, TLS);
  });

  test('an empty message', async () => {
    const { sink } = await converse(`${ENVELOPE}DATA\r\n.\r\n`);
    assert.equal(sink.messages[0]?.message, '');
  });

  test('refused recipients are not in the envelope; DATA needs an accepted one', async () => {
    const { replies, sink } = await converse(
      `${EHLO}MAIL FROM:<a@b>\r\nRCPT TO:<unknown@example.com>\r\nDATA\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n`,
    );
    assert.deepEqual(codes(replies.slice(2)), ['550 5.1.1', '503 5.5.1', '250 2.1.5', '354', '250 2.0.0']);
    assert.deepEqual(
      sink.messages[0]?.envelope.recipients.map((r) => r.address),
      ['c@d'],
    );
  });

  const refusals: Array<[string, string, Partial<SessionConfig['limits']>, string]> = [
    ['too big', `${'x'.repeat(70)}\r\n`.repeat(200), {}, '552 5.3.4 Message size exceeds fixed maximum message size'],
    ['a line too long', `${'x'.repeat(999)}\r\n`, {}, '554 5.6.0 Message has a line longer than 1000 octets'],
    [
      'a bare LF',
      'a\nb\r\n',
      {},
      '550 5.6.0 Message contains a bare CR or LF; lines must end with CRLF (SMTP smuggling protection)',
    ],
    ['a bare CR', 'a\rb\r\n', {}, '550 5.6.0 Message contains a bare CR or LF; lines must end with CRLF (SMTP smuggling protection)'],
    ['a store failure', 'FAIL-HARD\r\n', {}, '451 4.3.0 Local error in processing, try again later'],
    ['a store refusal', 'FAIL-SMTP\r\n', {}, '452 4.3.1 Insufficient system storage'],
  ];
  for (const [name, body, limits, expected] of refusals) {
    test(`${name}: read to the end, then refused; the dialogue stays in step`, async () => {
      const { replies, sink, events, session } = await converse(`${ENVELOPE}DATA\r\n${body}.\r\nNOOP\r\n`, { limits });
      assert.deepEqual(replies.slice(-2), [expected, '250 2.0.0 OK']);
      assert.equal(sink.messages.length, 0);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.queueId, undefined);
      assert.equal(events[0]?.outcome.code, Number(expected.slice(0, 3)));
      assert.equal(session.stats.messagesRejected, 1);
      assert.equal(session.inTransaction, false);
    });
  }

  test('bare newlines normalized when configured', async () => {
    const { sink } = await converse(`${ENVELOPE}DATA\r\na\nb\rc\r\n.\r\n`, { config: { bareNewline: 'normalize' } });
    assert.equal(sink.messages[0]?.message, 'a\r\nb\r\nc\r\n');
  });

  test('SMTP smuggling: "\\n.\\n", "\\r\\n.\\n", "\\n.\\r\\n", "\\r.\\r" do not end the message', async () => {
    const smuggled = 'MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nforged\r\n';
    for (const end of ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r']) {
      const { sink, policy } = await converse(`${ENVELOPE}DATA\r\nreal${end}${smuggled}.\r\n`, {
        config: { bareNewline: 'normalize' },
      });
      assert.equal(sink.messages.length, 1, JSON.stringify(end));
      assert.ok(sink.messages[0]?.message.includes('MAIL FROM:<evil@example.org>'));
      assert.equal(policy.senders.length, 1, 'the smuggled MAIL never reached the policy');
    }
  });

  test('a 100 KiB message in 1 KiB chunks', async () => {
    const line = `${'y'.repeat(98)}\r\n`;
    const body = line.repeat(1024);
    const { sink } = await converse(`${ENVELOPE}DATA\r\n${body}.\r\n`, { limits: { maxMessageSize: 200_000 } }, 1024);
    assert.equal(sink.messages[0]?.message, body);
  });

  test('waitingFor tells the server which timeout applies', async () => {
    const h = harness();
    h.session.start();
    assert.equal(h.session.waitingFor, 'command');
    await feed(h, `${ENVELOPE}DATA\r\npartial`);
    assert.equal(h.session.waitingFor, 'data');
    await feed(h, '\r\n.\r\n');
    assert.equal(h.session.waitingFor, 'command');
  });
});

describe('SmtpSession: BDAT', () => {
  test('chunks, then LAST', async () => {
    const { replies, sink } = await converse(`${ENVELOPE}BDAT 4\r\nab\r\nBDAT 4 LAST\r\ncd\r\nNOOP\r\n`);
    assert.deepEqual(replies.slice(3), [
      '250 2.0.0 4 octets received',
      '250 2.0.0 OK: queued as Q00000000001',
      '250 2.0.0 OK',
    ]);
    assert.equal(sink.messages[0]?.message, 'ab\r\ncd\r\n');
  });

  test('BDAT 0 LAST ends the message', async () => {
    const { replies, sink } = await converse(`${ENVELOPE}BDAT 3\r\nx\r\nBDAT 0 LAST\r\n`);
    assert.deepEqual(codes(replies.slice(3)), ['250 2.0.0', '250 2.0.0']);
    assert.equal(sink.messages[0]?.message, 'x\r\n');
  });

  test('chunk data that looks like commands is data, in any fragmentation', async () => {
    for (const size of [Infinity, 1, 3, 17]) {
      const { sink, replies } = await converse(`${ENVELOPE}BDAT 12 LAST\r\nQUIT\r\nRSET\r\nNOOP\r\n`, {}, size);
      assert.equal(sink.messages[0]?.message, 'QUIT\r\nRSET\r\n');
      assert.deepEqual(codes(replies.slice(3)), ['250 2.0.0', '250 2.0.0']);
    }
  });

  test('an invalid BDAT is 501 5.5.4 and its octets are consumed', async () => {
    const { replies, sink } = await converse(`${ENVELOPE}BDAT 6 NOW\r\nQUIT\r\nNOOP\r\n`);
    assert.deepEqual(codes(replies.slice(3)), ['501 5.5.4', '250 2.0.0']);
    assert.equal(sink.messages.length, 0);
  });

  test('size and bare newline checks run across chunks', async () => {
    const big = await converse(`${ENVELOPE}BDAT 6000\r\n${'x'.repeat(6000)}BDAT 6000 LAST\r\n${'x'.repeat(6000)}NOOP\r\n`);
    assert.deepEqual(codes(big.replies.slice(3)), ['250 2.0.0', '552 5.3.4', '250 2.0.0']);
    const bare = await converse(`${ENVELOPE}BDAT 2\r\na\rBDAT 2 LAST\r\nb\n`);
    assert.deepEqual(codes(bare.replies.slice(3)), ['250 2.0.0', '550 5.6.0']);
    const split = await converse(`${ENVELOPE}BDAT 2\r\na\rBDAT 1 LAST\r\n\n`);
    assert.deepEqual(codes(split.replies.slice(3)), ['250 2.0.0', '250 2.0.0'], 'a CRLF split across chunks is fine');
  });
});

describe('SmtpSession: limits', () => {
  test('maxErrors: the last error is followed by 421 4.7.0 and the connection closes', async () => {
    const { replies, io } = await converse('FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n', { limits: { maxErrors: 3 } });
    assert.deepEqual(replies, [
      '500 5.5.2 Command not recognized',
      '500 5.5.2 Command not recognized',
      '500 5.5.2 Command not recognized',
      '421 4.7.0 mx.example Too many errors, closing connection',
    ]);
    assert.ok(io.closed);
  });

  test('maxErrors: 452 for recipients over the limit is flow control, not an error', async () => {
    // RFC 5321 4.5.3.1.10: the client sends the rest in a later transaction, on this connection.
    const rcpts = Array.from({ length: 8 }, (_, i) => `RCPT TO:<r${i}@example.com>\r\n`).join('');
    const { replies, io, sink } = await converse(
      `${EHLO}MAIL FROM:<a@example.org>\r\n${rcpts}DATA\r\nhello\r\n.\r\n` +
        `MAIL FROM:<a@example.org>\r\nRCPT TO:<r3@example.com>\r\nDATA\r\nagain\r\n.\r\n`,
      { limits: { maxErrors: 2 } },
    );
    assert.deepEqual(codes(replies.slice(1, 10)), [
      '250 2.1.0',
      ...Array(3).fill('250 2.1.5'),
      ...Array(5).fill('452 4.5.3'),
    ]);
    assert.deepEqual(codes(replies.slice(10)), ['354', '250 2.0.0', '250 2.1.0', '250 2.1.5', '354', '250 2.0.0']);
    assert.equal(io.closed, false);
    assert.deepEqual(
      sink.messages.map((m) => m.envelope.recipients.map((r) => r.address)),
      [['r0@example.com', 'r1@example.com', 'r2@example.com'], ['r3@example.com']],
    );
  });

  test('maxErrors: temporary refusals and refusals of the message itself do not count', async () => {
    const { replies, io } = await converse(
      `${ENVELOPE}DATA\r\nFAIL-SMTP\r\n.\r\n`.repeat(3) + `${ENVELOPE}DATA\r\nbare\nLF\r\n.\r\n`.repeat(3) + 'NOOP\r\n',
      { limits: { maxErrors: 2 } },
    );
    assert.equal(replies.filter((r) => r.startsWith('452 4.3.1')).length, 3);
    assert.equal(replies.filter((r) => r.startsWith('550 5.6.0')).length, 3);
    assert.match(replies.at(-1) ?? '', /^250 2\.0\.0/, 'NOOP still answered');
    assert.equal(io.closed, false);
  });

  test('maxErrors: unknown users, relay refusals and policy refusals count', async () => {
    const { replies, io } = await converse(
      `${EHLO}MAIL FROM:<blocked@example.org>\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<unknown@example.com>\r\nNOOP\r\n`,
      { limits: { maxErrors: 2 } },
    );
    assert.deepEqual(codes(replies.slice(1)), ['550 5.7.1', '250 2.1.0', '550 5.1.1', '421 4.7.0']);
    assert.ok(io.closed);
  });

  test('blamesClient: by RFC 3463 class', () => {
    const blamed = (code: number, enhanced?: string) => blamesClient(reply(code, enhanced, 'x'));
    for (const [code, enhanced] of [[500, '5.5.2'], [503, '5.5.1'], [501, undefined], [550, '5.1.1'], [554, '5.7.1'], [535, '5.7.8'], [553, '5.1.3']] as const) {
      assert.equal(blamed(code, enhanced), true, `${code} ${enhanced}`);
    }
    for (const [code, enhanced] of [[452, '4.5.3'], [450, '4.7.1'], [451, '4.3.0'], [454, '4.7.0'], [552, '5.3.4'], [550, '5.6.0'], [554, '5.4.6'], [552, '5.2.2'], [250, '2.0.0']] as const) {
      assert.equal(blamed(code, enhanced), false, `${code} ${enhanced}`);
    }
  });

  test('maxMessagesPerConnection: 421 4.7.0 at the next MAIL', async () => {
    const message = 'MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n';
    const { replies, io, sink } = await converse(`${EHLO}${message}${message}${message}`, {
      limits: { maxMessagesPerConnection: 2 },
    });
    assert.equal(sink.messages.length, 2);
    assert.match(replies.at(-1) ?? '', /^421 4\.7\.0 mx\.example /);
    assert.ok(io.closed);
  });
});

describe('SmtpSession: STARTTLS', () => {
  test('220, then the client must EHLO again, and STARTTLS is no longer offered', async () => {
    const { replies, io, session } = await converse(`${EHLO}STARTTLS\r\n`);
    assert.equal(replies[1], '220 2.0.0 Ready to start TLS');
    assert.equal(io.tlsStarts, 1);
    assert.deepEqual(session.stats.tls, TLS);
    const h = { session, io } as Harness;
    io.output = '';
    await feed(h, `MAIL FROM:<a@b>\r\n${EHLO}STARTTLS\r\n`);
    const after = parseReplies(io.output);
    assert.equal(codes(after)[0], '503 5.5.1');
    assert.doesNotMatch(after[1] ?? '', /STARTTLS/);
    assert.equal(codes(after)[2], '503 5.5.1');
  });

  test('commands pipelined after STARTTLS are dropped (CVE-2011-0411)', async () => {
    const { replies, policy } = await converse(`${EHLO}STARTTLS\r\nMAIL FROM:<a@b>\r\n`);
    assert.deepEqual(codes(replies.slice(1)), ['220 2.0.0']);
    assert.equal(policy.senders.length, 0);
  });

  test('not offered, already active, or with an argument', async () => {
    const off = await converse(`${EHLO}STARTTLS\r\n`, { config: { starttls: false } });
    assert.deepEqual(codes(off.replies.slice(1)), ['502 5.5.1']);
    const again = await converse(`${EHLO}STARTTLS\r\n`, { tls: TLS });
    assert.deepEqual(codes(again.replies.slice(1)), ['503 5.5.1']);
    const arg = await converse(`${EHLO}STARTTLS now\r\n`);
    assert.deepEqual(codes(arg.replies.slice(1)), ['501 5.5.4']);
  });

  test('a failed handshake closes the connection', async () => {
    const h = harness();
    h.io.failTls = true;
    h.session.start();
    await feed(h, `${EHLO}STARTTLS\r\n`);
    assert.ok(h.io.closed && h.session.closed);
  });
});

describe('SmtpSession: timeout and shutdown', () => {
  test('timeout: 421 4.4.2 and close', async () => {
    const h = harness();
    h.session.start();
    h.session.timeout();
    assert.match(h.io.output, /421 4\.4\.2 mx\.example Timeout exceeded, closing connection\r\n$/);
    assert.ok(h.io.closed);
  });

  test('shutdown while idle: 421 4.3.2 at once', async () => {
    const h = harness();
    h.session.start();
    await feed(h, EHLO);
    h.session.shutdown();
    assert.match(h.io.output, /421 4\.3\.2 mx\.example Service shutting down, try again later\r\n$/);
    assert.ok(h.io.closed);
  });

  test('shutdown during DATA: the message is finished and answered first', async () => {
    const h = harness();
    h.session.start();
    await feed(h, `${ENVELOPE}DATA\r\nhalf a mess`);
    h.session.shutdown();
    assert.equal(h.io.closed, false);
    await feed(h, 'age\r\n.\r\nNOOP\r\n');
    const replies = parseReplies(h.io.output);
    assert.deepEqual(codes(replies.slice(-2)), ['250 2.0.0', '421 4.3.2']);
    assert.equal(h.sink.messages[0]?.message, 'half a message\r\n');
    assert.ok(h.io.closed);
  });

  test('stats for the log line', async () => {
    const { session } = await converse(`${ENVELOPE}DATA\r\nx\r\n.\r\nFOO\r\n`);
    assert.deepEqual(session.stats, {
      messagesAccepted: 1,
      messagesRejected: 0,
      errors: 1,
      helo: 'client.example',
      tls: undefined,
      authUser: undefined,
    });
  });
});

describe('SmtpSession: pipelining (RFC 2920)', () => {
  test('a batch with a bad command in the middle: one reply each, in order, in one write', async () => {
    const h = harness();
    h.session.start();
    const before = h.io.writes;
    await feed(
      h,
      `${EHLO}MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nXBAD\r\nRCPT TO:<unknown@example.com>\r\n` +
        'RCPT TO:<bad syntax>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n',
    );
    assert.deepEqual(codes(parseReplies(h.io.output).slice(1)), [
      '250',
      '250 2.1.0',
      '250 2.1.5',
      '500 5.5.2',
      '550 5.1.1',
      '501 5.1.3',
      '250 2.1.5',
      '354',
    ]);
    assert.equal(h.io.writes - before, 1, 'the replies to one batch go out in one write');
  });

  test('input is paused while more than 1 MiB waits, resumed when drained', async () => {
    const h = harness();
    h.session.start();
    let open!: () => void;
    h.policy.gate = new Promise((resolve) => (open = resolve));
    h.session.receive(Buffer.from(`${EHLO}MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n`));
    const noops = Buffer.from('NOOP\r\n'.repeat(200_000));
    h.session.receive(noops);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(h.io.pauses, 1);
    assert.equal(h.io.resumes, 0);
    open();
    await settle(h.session);
    assert.equal(h.io.resumes, 1);
    assert.equal(parseReplies(h.io.output).length, 1 + 3 + 200_000);
  });
});

// ---- property tests -------------------------------------------------------------------------


const token = fc.constantFrom(
  'EHLO x\r\n',
  'HELO x\r\n',
  'MAIL FROM:<a@b>\r\n',
  'MAIL FROM:<>\r\n',
  'RCPT TO:<c@d>\r\n',
  'RCPT TO:<unknown@d>\r\n',
  'DATA\r\n',
  'BDAT 3\r\n',
  'BDAT 2 LAST\r\n',
  'BDAT x\r\n',
  'RSET\r\n',
  'NOOP\r\n',
  'STARTTLS\r\n',
  '.\r\n',
  '\r\n.\r\n',
  '\r\n',
  '\r',
  '\n',
  '.',
  '\0',
  '\xff\xfe',
  'é',
  'x'.repeat(600),
  'abc',
  ' ',
);

describe('SmtpSession: properties', () => {
  test('arbitrary bytes in arbitrary pieces: no throw, no hang, only well-formed replies', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(token, fc.string({ maxLength: 8 })), { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        async (tokens, cuts) => {
          const h = harness({ limits: { maxErrors: 1000 } });
          h.session.start();
          for (const piece of cutAt(Buffer.from(tokens.join(''), 'latin1'), cuts)) h.session.receive(piece);
          await settle(h.session);
          parseReplies(h.io.output);
          assert.ok(h.io.output.startsWith('220 mx.example ESMTP Postern\r\n'));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('any body sent with DATA comes back as exactly one message, equal to the body', async () => {
    const piece = fc.constantFrom('a', '.', '..', '\r\n', '\r', '\n', '\n.\n', '\r.\r', '\n.\r\n', '\r\n.\n', 'é', ' ');
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 10 }), async (pieces, cuts) => {
        let body = pieces.join('');
        if (body !== '' && !body.endsWith('\r\n')) body += '\r\n';
        const stuffed = body.replace(/(^|\r\n)\./g, '$1..');
        const h = harness({ config: { bareNewline: 'normalize' } });
        h.session.start();
        const input = Buffer.from(`${ENVELOPE}DATA\r\n${stuffed}.\r\nNOOP\r\n`, 'latin1');
        for (const chunk of cutAt(input, cuts)) h.session.receive(chunk);
        await settle(h.session);
        assert.equal(h.sink.messages.length, 1);
        assert.equal(h.sink.messages[0]?.message, body.replace(/\r\n|\r|\n/g, '\r\n'));
        assert.equal(codes(parseReplies(h.io.output)).at(-1), '250 2.0.0');
      }),
      { numRuns: 300 },
    );
  });

  test('the same dialogue in one chunk, 1-, 3- and 17-byte pieces gives the same output', async () => {
    const dialogueToken = token.filter((t) => t !== 'STARTTLS\r\n');
    await fc.assert(
      fc.asyncProperty(fc.array(dialogueToken, { maxLength: 30 }), async (tokens) => {
        const input = Buffer.from(`${EHLO}${tokens.join('')}`, 'latin1');
        const outputs: string[] = [];
        for (const size of [Infinity, 1, 3, 17]) {
          const h = harness({ limits: { maxErrors: 1000 } });
          h.session.start();
          await feed(h, input, size);
          outputs.push(h.io.output);
        }
        assert.equal(new Set(outputs).size, 1, outputs.join('\n----\n'));
      }),
      { numRuns: 200 },
    );
  });
});
