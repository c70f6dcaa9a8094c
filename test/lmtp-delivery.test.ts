// Local delivery over LMTP end to end: the real Postern process with [delivery] lmtp on a Unix
// socket, mail submitted with AUTH (nodemailer), and a scripted LMTP server from test/support
// answering each recipient after the final dot as the test says. Through the real queue: a 4xx
// recipient is retried alone, a 5xx one bounces to the sender (whose DSN comes back over LMTP
// too), a 2xx one is delivered once, and one session carries message after message.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from './support/dns-server.js';
import { requireTool, runTool } from './support/external-tool.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import { stopAndDispose } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, relayInstance, submit } from './support/relay-world.js';
import { SmtpSink, type SinkMessage, type SinkOptions } from './support/smtp-sink.js';
import { waitFor } from './support/wait-for.js';

const at = (local: string): string => `${local}@${LOCAL_DOMAIN}`;
const ALICE = at('alice');
const USERS = ['alice', 'ok', 'busy', 'gone', 'first', 'second', 'late', 'mid', 'plain', 'slow', 'utf', 'again'].map(at);

/** The LMTP server's script, changed while the tests run (the sink reads it at each step). */
const script: { -readonly [K in keyof SinkOptions]: SinkOptions[K] } = { lmtp: true, name: 'lmtp.postern.test', dataReplies: {} };
const dataReplies = script.dataReplies as Record<string, string>;

describe('local delivery over LMTP, through the queue, to a scripted LMTP server', () => {
  let dns: TestDnsServer;
  let lmtp: SmtpSink;
  let socketDir: string;
  let socketPath: string;
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    dns = await TestDnsServer.start();
    // Reachable by the service account the server switches to as root (mkdtemp makes 0700).
    socketDir = mkdtempSync(join(tmpdir(), 'postern-lmtp-'));
    chmodSync(socketDir, 0o755);
    socketPath = join(socketDir, 'lmtp');
    lmtp = await SmtpSink.startUnix(script, socketPath);
    instance = await relayInstance({ dns, users: USERS, extra: { delivery: { lmtp: `unix:${socketPath}` } } });
    server = await instance.start();
  });

  after(async () => {
    await stopAndDispose(server, instance);
    await lmtp?.close();
    await dns?.close();
    if (socketDir) rmSync(socketDir, { recursive: true, force: true });
  });

  /** The LMTP transactions that carried the message with this marker. */
  const carrying = (m: string): SinkMessage[] => lmtp.messages.filter((msg) => msg.data.toString('latin1').includes(m));
  const deliveredTo = (m: string, address: string): number => carrying(m).filter((msg) => msg.delivered.includes(address)).length;
  const attempt = (recipient: string, status: string): Promise<Record<string, unknown>> =>
    server.waitForLog((e) => e.msg === 'local delivery attempt' && e.recipient === recipient && e.status === status);

  test('a message submitted with AUTH is delivered over LMTP once, and logged like any delivery', async () => {
    const m = marker('lmtp-ok');
    await submit(server.port('submission'), { from: ALICE, to: [at('ok')], marker: m });
    await waitFor(() => (deliveredTo(m, at('ok')) === 1 ? true : undefined));
    const [tx] = carrying(m);
    assert.equal(tx?.sender, ALICE);
    assert.equal(tx?.heloVerb, 'LHLO');
    assert.equal(tx?.helo, 'mx.postern.test');
    const line = await attempt(at('ok'), 'delivered');
    assert.equal(line.remote_host, `unix:${socketPath}`);
    assert.match(String(line.reply), /^250 /);
    assert.deepEqual(line.mailboxes, [at('ok')]);
    assert.deepEqual(instance.readMaildir(at('ok')), [], 'Postern wrote no Maildir copy of its own');
  });

  test('250, 452 and 550 after one dot: delivered once, the 4xx retried alone, the 5xx bounced to the sender', async () => {
    const m = marker('lmtp-mixed');
    dataReplies[at('busy')] = '452 4.2.2 Mailbox is full';
    dataReplies[at('gone')] = '550 5.2.1 Mailbox disabled';
    await submit(server.port('submission'), { from: ALICE, to: [at('ok'), at('busy'), at('gone')], marker: m });
    // The bounce is local mail too: it reaches the sender over LMTP.
    const dsn = await waitFor(() => lmtp.messages.find((msg) => msg.sender === '' && msg.delivered.includes(ALICE) && msg.data.toString('latin1').includes(m)));
    const text = dsn.data.toString('latin1');
    assert.match(text, /^Final-Recipient: rfc822; ?gone@postern\.test\r?$/m);
    assert.match(text, /^Action: failed\r?$/m);
    assert.match(text, /^Status: 5\.2\.1\r?$/m);
    assert.match(text, /550 5\.2\.1 Mailbox disabled/, "the LMTP server's own words are quoted");
    assert.doesNotMatch(text, /^Final-Recipient: rfc822; ?busy@/m, 'the deferred recipient is not in the bounce');

    const deferred = await attempt(at('busy'), 'deferred');
    assert.match(String(deferred.reply), /^452 4\.2\.2/);
    delete dataReplies[at('busy')];
    await waitFor(() => (deliveredTo(m, at('busy')) === 1 ? true : undefined));
    const [first, ...retries] = carrying(m).filter((msg) => msg.sender === ALICE);
    assert.deepEqual(first?.recipients, [at('ok'), at('busy'), at('gone')]);
    assert.ok(retries.length >= 1);
    for (const retry of retries) assert.deepEqual(retry.recipients, [at('busy')], 'a retry goes to the deferred recipient alone');
    assert.equal(deliveredTo(m, at('ok')), 1);
    delete dataReplies[at('gone')];
  });

  test('a 421 greeting defers the message; it is delivered once the server takes mail again', async () => {
    const m = marker('lmtp-421');
    script.greeting = '421 4.3.2 Service shutting down';
    lmtp.dropConnections(); // the kept session would not see the new greeting
    await submit(server.port('submission'), { from: ALICE, to: [at('late')], marker: m });
    const deferred = await attempt(at('late'), 'deferred');
    assert.match(String(deferred.reply), /^421 4\.3\.2/);
    delete script.greeting;
    await waitFor(() => (deliveredTo(m, at('late')) === 1 ? true : undefined));
  });

  test('a session lost between the replies: the recipient with a reply is done, the other retried alone', async () => {
    const m = marker('lmtp-drop');
    script.dropAfterReplies = 1;
    await submit(server.port('submission'), { from: ALICE, to: [at('first'), at('second')], marker: m });
    const deferred = await attempt(at('second'), 'deferred');
    assert.match(String(deferred.reason), /gave no reply/);
    delete script.dropAfterReplies;
    await waitFor(() => (deliveredTo(m, at('second')) === 1 ? true : undefined));
    assert.equal(deliveredTo(m, at('first')), 1);
    assert.ok(carrying(m).slice(1).every((msg) => msg.recipients.join() === at('second')));
  });

  test('a session lost in the middle of DATA: deferred, then delivered once', async () => {
    const m = marker('lmtp-mid-data');
    script.dropMidData = true;
    await submit(server.port('submission'), { from: ALICE, to: [at('mid')], marker: m });
    await attempt(at('mid'), 'deferred');
    delete script.dropMidData;
    await waitFor(() => (deliveredTo(m, at('mid')) === 1 ? true : undefined));
  });

  test('without PIPELINING the commands go one by one, with the same per-recipient replies', async () => {
    const m = marker('lmtp-no-pipelining');
    script.pipelining = false;
    lmtp.dropConnections(); // a new session, whose LHLO lacks PIPELINING
    dataReplies[at('slow')] = '451 4.3.0 Try again later';
    await submit(server.port('submission'), { from: ALICE, to: [at('plain'), at('slow')], marker: m });
    await attempt(at('slow'), 'deferred');
    const [tx] = carrying(m);
    assert.equal(tx?.pipelined, false);
    assert.deepEqual(tx?.delivered, [at('plain')]);
    delete dataReplies[at('slow')];
    await waitFor(() => (deliveredTo(m, at('slow')) === 1 ? true : undefined));
    script.pipelining = true;
  });

  test('a message that needs SMTPUTF8 fails with 5.6.7 when the LMTP server lacks it, and goes no further', async () => {
    requireTool('python3', 'python3');
    const m = marker('lmtp-utf8');
    script.smtputf8 = false;
    lmtp.dropConnections(); // a new session, whose LHLO lacks SMTPUTF8
    const sent = await runTool('python3', ['-c', SEND_SMTPUTF8, String(server.port('mx')), at('utf'), m]);
    assert.equal(sent.code, 0, sent.stderr);
    const failed = await attempt(at('utf'), 'failed');
    assert.match(String(failed.reason), /needs SMTPUTF8/);
    // (Its bounce may: the sender's domain does not exist, so the postmaster gets it, over LMTP.)
    assert.equal(carrying(m).filter((msg) => msg.recipients.includes(at('utf'))).length, 0, 'the message was never offered to the LMTP server');
    script.smtputf8 = true;
    lmtp.dropConnections();
  });

  test('one LMTP session carries message after message', async () => {
    const before = lmtp.connections;
    const markers = [marker('reuse-1'), marker('reuse-2'), marker('reuse-3')];
    for (const m of markers) {
      await submit(server.port('submission'), { from: ALICE, to: [at('again')], marker: m });
      await waitFor(() => (deliveredTo(m, at('again')) === 1 ? true : undefined));
    }
    const sessions = new Set(markers.flatMap((m) => carrying(m).map((msg) => msg.connection)));
    assert.equal(sessions.size, 1, 'the three messages came over one session');
    assert.ok(lmtp.connections - before <= 1, `${lmtp.connections - before} new connections for three messages`);
  });
});

/** Python's smtplib on the MX port: an internationalized sender, MAIL FROM ... SMTPUTF8 (RFC 6531). */
const SEND_SMTPUTF8 = `
import smtplib, sys
port, rcpt, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
message = f"From: jos\\u00e9@elsewhere.test\\r\\nTo: {rcpt}\\r\\nSubject: {marker}\\r\\n\\r\\nOl\\u00e1.\\r\\n"
with smtplib.SMTP("127.0.0.1", port) as s:
    s.sendmail("jos\\u00e9@elsewhere.test", [rcpt], message.encode("utf-8"), mail_options=["SMTPUTF8"])
`;
