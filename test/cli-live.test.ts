// Admin commands take effect on a running server with no restart and no reload: the CLI writes
// the store, and the very next RCPT sees it. One SMTP session stays open throughout, to show the
// change needs no reconnect either.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { SmtpClient, type SmtpReply } from './support/smtp-client.js';

let instance: PosternInstance;
let server: PosternProcess;

before(async () => {
  instance = new PosternInstance();
  server = await instance.start();
});

after(() => stopAndDispose(server, instance));

function assertReply(reply: SmtpReply, code: number, enhanced: string): void {
  assert.equal(reply.code, code, reply.text);
  assert.equal(reply.enhanced, enhanced, reply.text);
}

test('domain add, user add and alias add change the next RCPT answer', async () => {
  const client = await SmtpClient.open(server.port('mx'));
  try {
    await client.command('MAIL FROM:<sender@remote.test>', 250);

    // Not yet a local domain: delivering there would be relaying.
    assertReply(await client.command('RCPT TO:<alice@live.test>'), 554, '5.7.1');

    await instance.cliOk(['domain', 'add', 'live.test']);
    assertReply(await client.command('RCPT TO:<alice@live.test>'), 550, '5.1.1');

    await instance.addUser('alice@live.test');
    assertReply(await client.command('RCPT TO:<alice@live.test>'), 250, '2.1.5');

    assertReply(await client.command('RCPT TO:<sales@live.test>'), 550, '5.1.1');
    await instance.cliOk(['alias', 'add', 'sales@live.test', 'alice@live.test']);
    assertReply(await client.command('RCPT TO:<sales@live.test>'), 250, '2.1.5');

    await client.command('DATA', 354);
    client.send('Subject: cli-live\r\n\r\nadded while running\r\n.\r\n');
    await client.expect(250);
    await client.quit();
  } finally {
    client.destroy();
  }
  await instance.waitForMessage('alice@live.test', 'cli-live');

  const domains = JSON.parse(await instance.cliOk(['domain', 'list', '--json'])) as unknown;
  assert.ok(JSON.stringify(domains).includes('live.test'), `domain list --json: ${JSON.stringify(domains)}`);
});
