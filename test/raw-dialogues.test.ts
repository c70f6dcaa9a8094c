// Scripted hostile dialogues over raw sockets against the running server process: the byte
// sequences real attackers and broken clients send, checked reply by reply. After each abuse the
// session must still be in step (the next command gets its own, correct reply).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { SmtpClient } from './support/smtp-client.js';

const ALICE = 'alice@example.test';
const MAX_RECIPIENTS = 5;
const MAX_MESSAGE_SIZE = 20_000;

describe('raw dialogues against the running server', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let port: number;
  const clients: SmtpClient[] = [];

  async function session(): Promise<SmtpClient> {
    const client = await SmtpClient.open(port);
    clients.push(client);
    return client;
  }

  before(async () => {
    instance = new PosternInstance({ limits: { max_recipients: MAX_RECIPIENTS, max_message_size: MAX_MESSAGE_SIZE } });
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE);
    server = await instance.start();
    port = server.port('mx');
  });

  after(async () => {
    for (const client of clients) client.destroy();
    await stopAndDispose(server, instance);
  });

  test('bare LF: "\\n.\\n" does not end DATA; the real CRLF.CRLF ends it with 550 5.6.0', async () => {
    const client = await session();
    await client.command('MAIL FROM:<smuggler@remote.test>', 250);
    await client.command(`RCPT TO:<${ALICE}>`, 250);
    await client.command('DATA', 354);
    // SMTP smuggling (2023): a server that ended DATA at "\n.\n" would run what follows as
    // commands. QUIT makes that visible: it would answer 221 and hang up.
    client.send('Subject: smuggle-bare-lf\r\n\r\nline\n.\nQUIT\r\nmore\r\n.\r\n');
    const reply = await client.readReply();
    assert.equal(reply.code, 550, reply.text);
    assert.equal(reply.enhanced, '5.6.0', reply.text);
    await client.command('NOOP', 250);
    await client.quit();
    assert.ok(!instance.readMaildir(ALICE).some((m) => m.text.includes('smuggle-bare-lf')));
  });

  test('an overlong command line gets 500 and the session continues', async () => {
    const client = await session();
    const reply = await client.command(`NOOP ${'x'.repeat(5_000)}`);
    assert.equal(reply.code, 500, reply.text);
    await client.command('NOOP', 250);
    await client.quit();
  });

  test(`recipient ${MAX_RECIPIENTS + 1} gets 452 4.5.3; the first ${MAX_RECIPIENTS} still receive`, async () => {
    const client = await session();
    await client.command('MAIL FROM:<many@remote.test>', 250);
    for (let i = 0; i < MAX_RECIPIENTS; i++) await client.command(`RCPT TO:<alice+r${i}@example.test>`, 250);
    const over = await client.command(`RCPT TO:<${ALICE}>`);
    assert.equal(over.code, 452, over.text);
    assert.equal(over.enhanced, '4.5.3', over.text);
    await client.command('DATA', 354);
    client.send('Subject: too-many-rcpts\r\n\r\nbody\r\n.\r\n');
    await client.expect(250);
    await client.quit();
    await instance.waitForMessage(ALICE, 'too-many-rcpts');
  });

  test('MAIL FROM with SIZE= over the limit gets 552 5.3.4 (RFC 1870)', async () => {
    const client = await session();
    const reply = await client.command(`MAIL FROM:<big@remote.test> SIZE=${MAX_MESSAGE_SIZE + 1}`);
    assert.equal(reply.code, 552, reply.text);
    assert.equal(reply.enhanced, '5.3.4', reply.text);
    await client.command(`MAIL FROM:<small@remote.test> SIZE=${MAX_MESSAGE_SIZE - 1}`, 250);
    await client.quit();
  });

  test('a pipelined batch (RFC 2920) is answered in order', async () => {
    const client = await session();
    client.send(
      'MAIL FROM:<batch@remote.test>\r\n' +
        `RCPT TO:<${ALICE}>\r\n` +
        'RCPT TO:<nobody@example.test>\r\n' +
        'RCPT TO:<bob@remote.test>\r\n' +
        'DATA\r\n',
    );
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await client.readReply()).code);
    assert.deepEqual(codes, [250, 250, 550, 554, 354]);
    client.send('Subject: pipelined-batch\r\n\r\nbody\r\n.\r\nNOOP\r\n');
    await client.expect(250);
    await client.expect(250);
    await client.quit();
    await instance.waitForMessage(ALICE, 'pipelined-batch');
  });

  test('NUL bytes: a command with NUL is refused, and the session stays in step', async () => {
    const client = await session();
    const reply = await client.command('MAIL FROM:<nul\0byte@remote.test>');
    assert.ok(reply.code >= 500 && reply.code < 600, reply.text);
    await client.command('MAIL FROM:<clean@remote.test>', 250);
    await client.command(`RCPT TO:<${ALICE}>`, 250);
    await client.command('DATA', 354);
    client.send('Subject: nul-in-body\r\n\r\nbefore\0after\r\n.\r\n');
    // Accepting or refusing NUL in a body are both defensible; losing step or crashing is not.
    const end = await client.readReply();
    assert.ok(end.code === 250 || (end.code >= 550 && end.code < 560), end.text);
    await client.command('NOOP', 250);
    await client.quit();
  });
});

describe('greeting delay: a client that talks first', () => {
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    instance = new PosternInstance({ limits: { greeting_delay_ms: 1_000 } });
    server = await instance.start();
  });

  after(() => stopAndDispose(server, instance));

  test('is refused with 554 (RFC 5321 4.3.1: the client waits for the greeting)', async () => {
    const client = await SmtpClient.connect(server.port('mx'));
    client.send('EHLO eager.remote.test\r\n');
    const reply = await client.readReply();
    assert.equal(reply.code, 554, reply.text);
    client.destroy();
  });

  test('a client that waits gets the 220 greeting', async () => {
    const client = await SmtpClient.connect(server.port('mx'));
    await client.expect(220);
    await client.command('EHLO patient.remote.test', 250);
    await client.quit();
  });
});
