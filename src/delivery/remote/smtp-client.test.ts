import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { SmtpSink, type SinkOptions } from '../../../test/support/smtp-sink.js';
import { makeCertificate } from '../../../test/support/test-certificate.js';
import type { OutboundTransaction, RecipientResult } from '../client/client-session.js';
import { SmtpClientError } from '../client/reply-stream.js';
import { SmtpClientConnection, type ClientOptions } from './smtp-client.js';

const logger = pino({ level: 'silent' });
const TIMEOUTS = { connectMs: 5000, greetingMs: 5000, mailMs: 5000, rcptMs: 5000, dataInitMs: 5000, dataBlockMs: 5000, dataFinalMs: 5000 };
const MESSAGE = Buffer.from('From: a@origin.test\r\nTo: b@sink.test\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n..two dots\r\n.\r\n');

async function withSink(opts: SinkOptions, fn: (sink: SmtpSink) => Promise<void>): Promise<void> {
  const sink = await SmtpSink.start(opts);
  try {
    await fn(sink);
  } finally {
    await sink.close();
  }
}

function open(sink: SmtpSink, over: Partial<ClientOptions> = {}): Promise<SmtpClientConnection> {
  return SmtpClientConnection.open({
    host: 'sink.test',
    address: '127.0.0.1',
    port: sink.port,
    heloName: 'postern.test',
    tls: { kind: 'opportunistic' },
    timeouts: TIMEOUTS,
    logger,
    ...over,
  });
}

function tx(over: Partial<OutboundTransaction> = {}): OutboundTransaction {
  return { sender: 'a@origin.test', recipients: [{ address: 'b@sink.test' }], message: MESSAGE, mailParams: {}, ...over };
}

function codes(results: RecipientResult[]): (number | string)[] {
  return results.map((r) => (r.kind === 'reply' ? r.reply.code : r.kind === 'refused' ? r.status : r.kind));
}

describe('SmtpClientConnection', () => {
  test('delivers a message: envelope and DATA in one batch, dot-stuffing undone by the peer, QUIT', async () => {
    await withSink({}, async (sink) => {
      const session = await open(sink);
      const results = await session.send(tx({ recipients: [{ address: 'b@sink.test' }, { address: 'c@sink.test' }] }));
      assert.deepEqual(codes(results), [250, 250]);
      const [first] = results;
      assert.equal(first?.kind === 'reply' && first.stage, 'data');
      await session.quit();
      const [m] = sink.messages;
      assert.ok(m);
      assert.equal(m.sender, 'a@origin.test');
      assert.deepEqual(m.recipients, ['b@sink.test', 'c@sink.test']);
      assert.deepEqual(m.data, MESSAGE);
      assert.equal(m.pipelined, true);
      assert.equal(m.dataWithEnvelope, true);
      assert.equal(m.heloVerb, 'EHLO');
      assert.equal(m.helo, 'postern.test');
      assert.ok(sink.commands.includes('QUIT'));
    });
  });

  test('a message without a final CRLF gets one', async () => {
    await withSink({}, async (sink) => {
      const session = await open(sink);
      await session.send(tx({ message: Buffer.from('Subject: x\r\n\r\nno newline') }));
      session.close();
      assert.equal(sink.messages[0]!.data.toString(), 'Subject: x\r\n\r\nno newline\r\n');
    });
  });

  test('per-recipient replies: 4xx and 5xx on RCPT, the DATA reply for the accepted one', async () => {
    const recipients = { 'busy@sink.test': '450 4.2.0 mailbox busy', 'nobody@sink.test': '550 5.1.1 no such user' };
    await withSink({ recipients }, async (sink) => {
      const session = await open(sink);
      const results = await session.send(
        tx({ recipients: [{ address: 'busy@sink.test' }, { address: 'ok@sink.test' }, { address: 'nobody@sink.test' }] }),
      );
      session.close();
      assert.deepEqual(codes(results), [450, 250, 550]);
      const nobody = results[2]!;
      assert.ok(nobody.kind === 'reply');
      assert.equal(nobody.stage, 'rcpt');
      assert.equal(nobody.reply.enhanced, '5.1.1');
      assert.deepEqual(sink.messages[0]!.recipients, ['ok@sink.test']);
    });
  });

  test('no message when every recipient is refused: the batched DATA is refused, nothing follows it', async () => {
    await withSink({ defaultRcpt: '550 5.1.1 no such user' }, async (sink) => {
      const session = await open(sink);
      const results = await session.send(tx());
      assert.deepEqual(codes(results), [550]);
      assert.ok(session.usable, 'the replies to the batch were all read');
      session.close();
      const [mail, rcpt, data] = sink.commands.slice(-3);
      assert.match(mail ?? '', /^MAIL FROM:<a@origin\.test>/);
      assert.deepEqual([rcpt, data], ['RCPT TO:<b@sink.test>', 'DATA']);
      assert.equal(sink.messages.length, 0);
    });
    await withSink({ defaultRcpt: '550 5.1.1 no such user', pipelining: false }, async (sink) => {
      const session = await open(sink);
      assert.deepEqual(codes(await session.send(tx())), [550]);
      session.close();
      assert.ok(!sink.commands.includes('DATA'), 'without PIPELINING, DATA waits for an accepted recipient');
    });
  });

  test('a refused sender answers for every recipient', async () => {
    await withSink({ mailReply: '553 5.7.1 sender rejected', pipelining: false }, async (sink) => {
      const session = await open(sink);
      const results = await session.send(tx({ recipients: [{ address: 'b@sink.test' }, { address: 'c@sink.test' }] }));
      session.close();
      assert.deepEqual(codes(results), [553, 553]);
      assert.ok(results.every((r) => r.kind === 'reply' && r.stage === 'mail'));
      assert.ok(!sink.commands.some((c) => c.startsWith('RCPT')), 'no RCPT after a refused MAIL without pipelining');
    });
  });

  test('falls back to HELO when EHLO is refused, and then uses no extension', async () => {
    await withSink({ ehlo: false }, async (sink) => {
      const session = await open(sink);
      assert.equal(session.extensions.size, 0);
      assert.deepEqual(codes(await session.send(tx())), [250]);
      session.close();
      const [m] = sink.messages;
      assert.equal(m!.heloVerb, 'HELO');
      assert.equal(m!.pipelined, false);
      assert.deepEqual(m!.mailParams, []);
    });
  });

  test('waits for each reply when the peer does not offer PIPELINING', async () => {
    await withSink({ pipelining: false }, async (sink) => {
      const session = await open(sink);
      await session.send(tx({ recipients: [{ address: 'b@sink.test' }, { address: 'c@sink.test' }] }));
      session.close();
      assert.equal(sink.messages[0]!.pipelined, false);
      assert.equal(sink.messages[0]!.dataWithEnvelope, false);
    });
  });

  test('declares SIZE, and does not offer a message larger than the peer takes (5.3.4)', async () => {
    await withSink({ size: 100 }, async (sink) => {
      const session = await open(sink);
      const small = Buffer.from('Subject: s\r\n\r\nx\r\n');
      assert.deepEqual(codes(await session.send(tx({ message: small }))), [250]);
      assert.deepEqual(sink.messages[0]!.mailParams, [`SIZE=${small.length}`]);
      const big = await session.send(tx({ message: Buffer.alloc(500, 'a') }));
      session.close();
      const [r] = big;
      assert.ok(r?.kind === 'refused');
      assert.equal(r.status, '5.3.4');
      assert.match(r.reason, /500 octets.*100 octets.*sink\.test/);
      assert.equal(sink.commands.filter((c) => c.startsWith('MAIL')).length, 1);
    });
  });

  test('8-bit content: BODY=8BITMIME when offered, refused (5.6.3) when not', async () => {
    const eight = Buffer.from('Subject: caf\u00e9\r\n\r\nna\u00efve\r\n', 'utf8');
    await withSink({}, async (sink) => {
      const session = await open(sink);
      await session.send(tx({ message: eight }));
      session.close();
      assert.ok(sink.messages[0]!.mailParams.includes('BODY=8BITMIME'));
      assert.deepEqual(sink.messages[0]!.data, eight);
    });
    await withSink({ eightBitMime: false }, async (sink) => {
      const session = await open(sink);
      const [r] = await session.send(tx({ message: eight }));
      assert.deepEqual(codes(await session.send(tx())), [250], 'a 7-bit message still goes');
      session.close();
      assert.ok(r?.kind === 'refused');
      assert.equal(r.status, '5.6.3');
      assert.match(r.reason, /8BITMIME/);
      assert.equal(sink.messages.length, 1);
    });
  });

  test('SMTPUTF8: passed on when offered; refused (5.6.7) when needed and not offered; a flag alone on ASCII mail is dropped', async () => {
    await withSink({}, async (sink) => {
      const session = await open(sink);
      await session.send(tx({ recipients: [{ address: 'j\u00f6rg@sink.test' }] }));
      session.close();
      assert.ok(sink.messages[0]!.mailParams.includes('SMTPUTF8'));
      assert.deepEqual(sink.messages[0]!.recipients, ['j\u00f6rg@sink.test']);
    });
    await withSink({ smtputf8: false }, async (sink) => {
      const session = await open(sink);
      const mixed = await session.send(tx({ recipients: [{ address: 'j\u00f6rg@sink.test' }, { address: 'plain@sink.test' }] }));
      const utf8Header = Buffer.from('Subject: gr\u00fc\u00dfe\r\n\r\nhello\r\n', 'utf8');
      const header = await session.send(tx({ message: utf8Header, mailParams: { smtputf8: true } }));
      const sender = await session.send(tx({ sender: 'j\u00f6rg@origin.test', mailParams: { smtputf8: true } }));
      const flagOnly = await session.send(tx({ recipients: [{ address: 'flag@sink.test' }], mailParams: { smtputf8: true } }));
      session.close();
      assert.deepEqual(codes(mixed), ['5.6.7', 250]);
      assert.deepEqual(codes(header), ['5.6.7'], 'a UTF-8 header field needs SMTPUTF8');
      assert.deepEqual(codes(sender), ['5.6.7'], 'so does a UTF-8 sender');
      assert.deepEqual(codes(flagOnly), [250], 'ASCII envelope and header: the flag alone is no reason to bounce');
      assert.deepEqual(sink.messages.map((m) => m.recipients), [['plain@sink.test'], ['flag@sink.test']]);
      assert.ok(!sink.messages[1]!.mailParams.includes('SMTPUTF8'), 'and SMTPUTF8 is not sent to a server without it');
    });
  });

  test('DSN parameters go to a peer that offers DSN, and only then', async () => {
    const dsnTx = tx({
      mailParams: { ret: 'HDRS', envid: 'id+1=x' },
      recipients: [{ address: 'b@sink.test', notify: ['FAILURE', 'DELAY'], orcpt: { addrType: 'rfc822', address: 'b@sink.test' } }, { address: 'c@sink.test', notify: [] }],
    });
    await withSink({ dsn: true }, async (sink) => {
      const session = await open(sink);
      await session.send(dsnTx);
      session.close();
      const [m] = sink.messages;
      assert.ok(m!.mailParams.includes('RET=HDRS'));
      assert.ok(m!.mailParams.includes('ENVID=id+2B1+3Dx'));
      assert.deepEqual(m!.rcptParams, [['NOTIFY=FAILURE,DELAY', 'ORCPT=rfc822;b@sink.test'], ['NOTIFY=NEVER']]);
    });
    await withSink({}, async (sink) => {
      const session = await open(sink);
      await session.send(dsnTx);
      session.close();
      assert.ok(!sink.messages[0]!.mailParams.some((p) => p.startsWith('RET') || p.startsWith('ENVID')));
      assert.deepEqual(sink.messages[0]!.rcptParams, [[], []]);
    });
  });

  test('uses STARTTLS when offered', async () => {
    await withSink({ starttls: true }, async (sink) => {
      const session = await open(sink);
      assert.ok(session.tls);
      assert.equal(session.tls.verified, false);
      await session.send(tx());
      session.close();
      assert.equal(sink.messages[0]!.tls, true);
      assert.equal(sink.messages[0]!.heloVerb, 'EHLO');
    });
  });

  test('opportunistic TLS falls back to plain text when the handshake fails', async () => {
    await withSink({ starttls: true, brokenTls: true }, async (sink) => {
      const session = await open(sink);
      assert.equal(session.tls, undefined);
      await session.send(tx());
      session.close();
      assert.equal(sink.connections, 2);
      assert.equal(sink.messages[0]!.tls, false);
    });
  });

  test('required TLS: no STARTTLS offered, a bad handshake, or an untrusted certificate end the session', async () => {
    await withSink({}, async (sink) => {
      await assert.rejects(open(sink, { tls: { kind: 'starttls', verify: false } }), SmtpClientError);
    });
    await withSink({ starttls: true, brokenTls: true }, async (sink) => {
      await assert.rejects(open(sink, { tls: { kind: 'starttls', verify: false } }), SmtpClientError);
      assert.equal(sink.connections, 1, 'no fallback to plain text');
    });
    await withSink({ starttls: true }, async (sink) => {
      await assert.rejects(open(sink, { tls: { kind: 'starttls', verify: true } }), /TLS handshake.*failed/);
      assert.equal(sink.messages.length, 0);
    });
  });

  test('a reply sent in plain text behind the 220 to STARTTLS ends the session (RFC 3207 section 4)', async () => {
    await withSink({ starttls: true, injectAfterStartTls: true }, async (sink) => {
      await assert.rejects(open(sink), /after its STARTTLS reply/);
      assert.equal(sink.messages.length, 0);
    });
  });

  test('verified TLS succeeds with a trusted certificate for the host name, and fails for another name', async () => {
    const certificate = await makeCertificate('mx.sink.test');
    await withSink({ starttls: true, certificate }, async (sink) => {
      const session = await open(sink, { host: 'mx.sink.test', tls: { kind: 'starttls', verify: true }, ca: [certificate.cert] });
      assert.equal(session.tls?.verified, true);
      await session.send(tx());
      session.close();
      assert.equal(sink.messages[0]!.tls, true);
      await assert.rejects(open(sink, { host: 'other.sink.test', tls: { kind: 'starttls', verify: true }, ca: [certificate.cert] }), SmtpClientError);
    });
  });

  test('AUTH PLAIN after STARTTLS; wrong credentials are an error', async () => {
    const auth = { username: 'relay-user', password: 's3cret pass' };
    await withSink({ starttls: true, auth }, async (sink) => {
      const session = await open(sink, { tls: { kind: 'starttls', verify: false } });
      await session.authenticate(auth.username, auth.password);
      await session.send(tx());
      session.close();
      assert.equal(sink.messages[0]!.authUser, 'relay-user');
      const bad = await open(sink, { tls: { kind: 'starttls', verify: false } });
      await assert.rejects(bad.authenticate(auth.username, 'wrong'), /refused our credentials: 535/);
      bad.close();
    });
  });

  test('AUTH LOGIN over implicit TLS', async () => {
    const auth = { username: 'relay-user', password: 'pw' };
    await withSink({ implicitTls: true, auth }, async (sink) => {
      sink.commands.length = 0;
      const session = await open(sink, { tls: { kind: 'implicit', verify: false } });
      assert.ok(session.tls);
      // The sink offers PLAIN and LOGIN; force LOGIN by hiding PLAIN.
      (session.extensions as Map<string, string>).set('AUTH', 'LOGIN');
      await session.authenticate(auth.username, auth.password);
      await session.send(tx());
      session.close();
      assert.ok(sink.commands.includes('AUTH LOGIN'));
      assert.equal(sink.messages[0]!.authUser, 'relay-user');
      assert.equal(sink.messages[0]!.tls, true);
    });
  });

  test('never sends credentials without TLS', async () => {
    await withSink({ auth: { username: 'u', password: 'p' } }, async (sink) => {
      const session = await open(sink, { tls: { kind: 'none' } });
      await assert.rejects(session.authenticate('u', 'p'), /without TLS/);
      session.close();
      assert.ok(!sink.commands.some((c) => c.startsWith('AUTH')));
    });
  });

  test('a connection dropped in the middle of DATA is an error', async () => {
    await withSink({ dropMidData: true }, async (sink) => {
      const session = await open(sink);
      await assert.rejects(session.send(tx({ message: Buffer.alloc(300_000, 'a') })), SmtpClientError);
      assert.equal(session.usable, false);
      assert.equal(sink.messages.length, 0);
    });
  });

  test('a second transaction after a completed one starts at MAIL, without RSET', async () => {
    await withSink({}, async (sink) => {
      const session = await open(sink);
      await session.send(tx());
      await session.send(tx({ recipients: [{ address: 'c@sink.test' }] }));
      await session.quit();
      assert.equal(sink.connections, 1);
      assert.deepEqual(sink.messages.map((m) => m.recipients), [['b@sink.test'], ['c@sink.test']]);
      assert.ok(!sink.commands.includes('RSET'));
    });
  });

  test('a transaction left open (every recipient refused) is ended with RSET before the next', async () => {
    await withSink({ recipients: { 'nobody@sink.test': '550 5.1.1 no such user' } }, async (sink) => {
      const session = await open(sink);
      assert.deepEqual(codes(await session.send(tx({ recipients: [{ address: 'nobody@sink.test' }] }))), [550]);
      // The sink, like Postfix, answers a second MAIL in an open transaction with 503.
      assert.deepEqual(codes(await session.send(tx())), [250]);
      await session.quit();
      const verbs = sink.commands.map((c) => c.split(/[ :]/)[0]);
      assert.deepEqual(verbs.slice(verbs.indexOf('MAIL')), ['MAIL', 'RCPT', 'DATA', 'RSET', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
      assert.deepEqual(sink.messages.map((m) => m.recipients), [['b@sink.test']]);
    });
  });

  test('a refused MAIL leaves no transaction: the next starts at MAIL', async () => {
    await withSink({ auth: { username: 'u', password: 'p' } }, async (sink) => {
      // Not logged in: the sink refuses MAIL with 530, and the batched RCPT and DATA with 503.
      const session = await open(sink);
      assert.deepEqual(codes(await session.send(tx())), [530]);
      assert.deepEqual(codes(await session.send(tx())), [530]);
      assert.ok(session.usable);
      session.close();
      assert.ok(!sink.commands.includes('RSET'));
    });
  });

  test('a peer that takes DATA with no recipient gets an empty message, and the session goes on', async () => {
    await withSink({ recipients: { 'nobody@sink.test': '550 5.1.1 no such user' }, dataWithoutRecipients: true }, async (sink) => {
      const session = await open(sink);
      assert.deepEqual(codes(await session.send(tx({ recipients: [{ address: 'nobody@sink.test' }] }))), [550]);
      assert.deepEqual(codes(await session.send(tx())), [250]);
      session.close();
      assert.deepEqual(sink.messages.map((m) => [m.recipients, m.data.length]), [[[], 0], [['b@sink.test'], MESSAGE.length]]);
    });
  });

  test('a 4xx greeting, a silent peer and a refused connection are SmtpClientErrors', async () => {
    await withSink({ greeting: '421 4.3.2 too busy' }, async (sink) => {
      const err = await open(sink).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof SmtpClientError);
      assert.equal(err.reply?.code, 421);
    });
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      await assert.rejects(
        SmtpClientConnection.open({ host: 'silent.test', address: '127.0.0.1', port, heloName: 'p', tls: { kind: 'none' }, timeouts: { ...TIMEOUTS, greetingMs: 200 }, logger }),
        /timed out.*greeting/,
      );
    } finally {
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
    await assert.rejects(
      SmtpClientConnection.open({ host: 'closed.test', address: '127.0.0.1', port, heloName: 'p', tls: { kind: 'none' }, timeouts: TIMEOUTS, logger }),
      /cannot connect.*ECONNREFUSED/,
    );
  });
});
