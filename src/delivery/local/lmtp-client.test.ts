import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SmtpSink, type SinkOptions } from '../../../test/support/smtp-sink.js';
import type { OutboundTransaction, RecipientResult } from '../client/client-session.js';
import { SmtpClientError } from '../client/reply-stream.js';
import { LmtpClientConnection, lmtpPeerName, parseLmtpEndpoint } from './lmtp-client.js';

const logger = pino({ level: 'silent' });
const TIMEOUTS = { connectMs: 5000, greetingMs: 5000, mailMs: 5000, rcptMs: 5000, dataInitMs: 5000, dataBlockMs: 5000, dataFinalMs: 5000 };
const MESSAGE = Buffer.from('From: a@origin.test\r\nTo: b@local.test\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n');

/** An LMTP sink on a Unix socket in a fresh directory. */
async function withSink(opts: SinkOptions, fn: (sink: SmtpSink, path: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-lmtp-'));
  const path = join(dir, 'lmtp');
  const sink = await SmtpSink.startUnix({ lmtp: true, ...opts }, path);
  try {
    await fn(sink, path);
  } finally {
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function open(path: string): Promise<LmtpClientConnection> {
  return LmtpClientConnection.open({ endpoint: { kind: 'unix', path }, lhloName: 'mx.local.test', timeouts: TIMEOUTS, logger });
}

function tx(recipients: string[], over: Partial<OutboundTransaction> = {}): OutboundTransaction {
  return { sender: 'a@origin.test', recipients: recipients.map((address) => ({ address })), message: MESSAGE, mailParams: {}, ...over };
}

function summary(results: RecipientResult[]): string[] {
  return results.map((r) => (r.kind === 'reply' ? `${r.stage} ${r.reply.code}` : r.kind === 'refused' ? `refused ${r.status}` : 'unanswered'));
}

describe('LmtpClientConnection', () => {
  test('LHLO, a pipelined envelope, and one reply per accepted recipient after the dot (RFC 2033 4.2)', async () => {
    const dataReplies = { 'busy@local.test': '452 4.2.2 Mailbox full', 'gone@local.test': '550 5.2.1 Mailbox disabled' };
    const recipients = { 'nobody@local.test': '550 5.1.1 No such user' };
    await withSink({ dataReplies, recipients }, async (sink, path) => {
      const session = await open(path);
      const results = await session.send(tx(['ok@local.test', 'busy@local.test', 'nobody@local.test', 'gone@local.test']));
      assert.deepEqual(summary(results), ['data 250', 'data 452', 'rcpt 550', 'data 550']);
      const busy = results[1];
      assert.equal(busy?.kind === 'reply' && busy.reply.enhanced, '4.2.2');
      assert.equal(session.usable, true);
      await session.quit();
      const [m] = sink.messages;
      assert.ok(m);
      assert.equal(m.heloVerb, 'LHLO');
      assert.equal(m.helo, 'mx.local.test');
      assert.equal(m.pipelined, true);
      assert.deepEqual(m.recipients, ['ok@local.test', 'busy@local.test', 'gone@local.test']);
      assert.deepEqual(m.delivered, ['ok@local.test']);
      assert.deepEqual(m.data, MESSAGE);
    });
  });

  test('without PIPELINING each command waits for its reply; the replies after the dot are the same', async () => {
    await withSink({ pipelining: false, dataReplies: { 'busy@local.test': '451 4.3.0 Try later' } }, async (sink, path) => {
      const session = await open(path);
      const results = await session.send(tx(['busy@local.test', 'ok@local.test']));
      session.close();
      assert.deepEqual(summary(results), ['data 451', 'data 250']);
      assert.equal(sink.messages[0]?.pipelined, false);
    });
  });

  test('a session lost between the replies: the replies read stand, the rest are unanswered', async () => {
    await withSink({ dropAfterReplies: 1 }, async (sink, path) => {
      const session = await open(path);
      const results = await session.send(tx(['first@local.test', 'second@local.test', 'third@local.test']));
      assert.deepEqual(summary(results), ['data 250', 'unanswered', 'unanswered']);
      assert.equal(session.usable, false);
      assert.deepEqual(sink.messages[0]?.delivered, ['first@local.test']);
    });
  });

  test('a session lost in the middle of DATA leaves every recipient unanswered, and nothing delivered', async () => {
    await withSink({ dropMidData: true }, async (sink, path) => {
      const session = await open(path);
      // Whether the peer lost the data or only its replies cannot be told apart from here.
      const results = await session.send(tx(['a@local.test', 'b@local.test']));
      assert.deepEqual(summary(results), ['unanswered', 'unanswered']);
      assert.equal(sink.messages.length, 0);
    });
  });

  test('a 421 greeting and a server that does not know LHLO are SmtpClientErrors', async () => {
    await withSink({ greeting: '421 4.3.2 Shutting down' }, async (_sink, path) => {
      await assert.rejects(open(path), (err: unknown) => err instanceof SmtpClientError && err.reply?.code === 421);
    });
    const smtp = await SmtpSink.start({});
    try {
      await assert.rejects(
        LmtpClientConnection.open({ endpoint: { kind: 'tcp', address: '127.0.0.1', port: smtp.port }, lhloName: 'mx.local.test', timeouts: TIMEOUTS, logger }),
        /refused LHLO: 500/,
      );
    } finally {
      await smtp.close();
    }
  });

  test('over TCP as over a Unix socket', async () => {
    const sink = await SmtpSink.start({ lmtp: true, dataReplies: { 'busy@local.test': '452 4.2.2 Mailbox full' } });
    try {
      const endpoint = parseLmtpEndpoint(`127.0.0.1:${sink.port}`);
      const session = await LmtpClientConnection.open({ endpoint, lhloName: 'mx.local.test', timeouts: TIMEOUTS, logger });
      assert.equal(session.peer, `127.0.0.1:${sink.port}`);
      assert.deepEqual(summary(await session.send(tx(['busy@local.test', 'ok@local.test']))), ['data 452', 'data 250']);
      await session.quit();
    } finally {
      await sink.close();
    }
  });

  test('MAIL FROM gets SIZE, BODY=8BITMIME and SMTPUTF8 as LHLO offers them', async () => {
    await withSink({ size: 10_000_000 }, async (sink, path) => {
      const session = await open(path);
      const eight = Buffer.from('Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n', 'latin1');
      await session.send(tx(['b@local.test'], { sender: 'jos\u00e9@origin.test', message: eight, mailParams: { smtputf8: true } }));
      session.close();
      assert.deepEqual(sink.messages[0]?.mailParams, [`SIZE=${eight.length}`, 'BODY=8BITMIME', 'SMTPUTF8']);
    });
  });

  test('a message that needs SMTPUTF8 is refused with 5.6.7 before MAIL when LHLO lacks it', async () => {
    await withSink({ smtputf8: false }, async (sink, path) => {
      const session = await open(path);
      const results = await session.send(tx(['b@local.test', 'c@local.test'], { sender: 'jos\u00e9@origin.test', mailParams: { smtputf8: true } }));
      session.close();
      assert.deepEqual(summary(results), ['refused 5.6.7', 'refused 5.6.7']);
      assert.ok(!sink.commands.some((c) => c.startsWith('MAIL')));
    });
  });
});

describe('[delivery] lmtp endpoints', () => {
  test('unix:/path, host:port and [v6]:port', () => {
    assert.deepEqual(parseLmtpEndpoint('unix:/run/dovecot/lmtp'), { kind: 'unix', path: '/run/dovecot/lmtp' });
    assert.deepEqual(parseLmtpEndpoint('127.0.0.1:24'), { kind: 'tcp', address: '127.0.0.1', port: 24 });
    assert.deepEqual(parseLmtpEndpoint('[::1]:24'), { kind: 'tcp', address: '::1', port: 24 });
    assert.deepEqual(parseLmtpEndpoint('lmtp.internal:2424'), { kind: 'tcp', address: 'lmtp.internal', port: 2424 });
    assert.equal(lmtpPeerName(parseLmtpEndpoint('[::1]:24')), '[::1]:24');
    assert.equal(lmtpPeerName(parseLmtpEndpoint('unix:/run/dovecot/lmtp')), 'unix:/run/dovecot/lmtp');
  });

  test('a port out of range or no port is refused with the expected form', () => {
    assert.throws(() => parseLmtpEndpoint('127.0.0.1:70000'), /expected "unix:\/path\/to\/socket" or "host:port"/);
    assert.throws(() => parseLmtpEndpoint('127.0.0.1'), /expected/);
  });
});
