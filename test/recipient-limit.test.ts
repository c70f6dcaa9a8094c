// A client with more recipients than one transaction may carry (limits.max_recipients, default
// 100) is told 452 4.5.3 for the rest and sends them in a later transaction (RFC 5321
// 4.5.3.1.10). The 452s are flow control: they must not count as errors, or the 421 "too many
// errors" would end the session and lose the transaction whose recipients were accepted.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { SmtpClient } from './support/smtp-client.js';

const DOMAIN = 'many.test';
const USERS = 250;
const LIMIT = 100;
const user = (i: number): string => `u${String(i).padStart(3, '0')}@${DOMAIN}`;

describe('more recipients than one transaction takes', () => {
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    // Default limits: max_recipients 100, max_errors 10.
    instance = new PosternInstance({ submission: false });
    // 250 accounts through the store itself: 250 CLI runs would each pay a process start and an
    // scrypt. The server, started after, hands the files to its account as usual.
    const store = openSqliteStore(join(instance.dataDir, 'postern.db'));
    await store.addDomain(DOMAIN);
    for (let i = 0; i < USERS; i++) await store.addUser(user(i), { passwordHash: '$scrypt$ln=15,r=8,p=1$AAAA$AAAA' });
    await store.close();
    server = await instance.start();
  });

  after(() => stopAndDispose(server, instance));

  test(`nodemailer sends one message to ${USERS} local users: all receive it, ${LIMIT} per transaction`, async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.port('mx'), secure: false, ignoreTLS: true, name: 'client.remote.test' });
    let pending = Array.from({ length: USERS }, (_, i) => user(i));
    const transactions: number[] = [];
    try {
      // What an MTA does with a 452 to RCPT: the message goes again to the deferred recipients.
      while (pending.length > 0 && transactions.length < 5) {
        const info = await transport.sendMail({
          envelope: { from: 'bulk@remote.test', to: pending },
          raw: `From: <bulk@remote.test>\r\nTo: undisclosed-recipients:;\r\nSubject: to-all-${USERS}\r\n\r\nhello everyone\r\n`,
        });
        transactions.push(info.accepted.length);
        for (const err of (info as { rejectedErrors?: { responseCode?: number; response?: string }[] }).rejectedErrors ?? []) {
          assert.equal(err.responseCode, 452, `only "too many recipients" refusals: ${err.response}`);
          assert.match(err.response ?? '', /^452 4\.5\.3 /);
        }
        pending = (info.rejected as string[]).map(String);
      }
    } finally {
      transport.close();
    }
    assert.deepEqual(transactions, [LIMIT, LIMIT, USERS - 2 * LIMIT]);
    for (let i = 0; i < USERS; i++) {
      const [message] = await instance.waitForMail(user(i));
      assert.match(message!.text, /Subject: to-all-250/, user(i));
    }
  });

  test('a raw dialogue: 150 RCPTs, then DATA; the first 100 get the message, the session goes on', async () => {
    const client = await SmtpClient.open(server.port('mx'));
    try {
      await client.command('MAIL FROM:<raw@remote.test>', 250);
      const replies = [];
      for (let i = 0; i < 150; i++) replies.push(await client.command(`RCPT TO:<${user(i)}>`));
      assert.deepEqual(
        replies.map((r) => `${r.code} ${r.enhanced}`),
        [...Array<string>(LIMIT).fill('250 2.1.5'), ...Array<string>(150 - LIMIT).fill('452 4.5.3')],
      );
      await client.command('DATA', 354);
      client.send('Subject: raw-150-first\r\n\r\nbody\r\n.\r\n');
      await client.expect(250);
      await client.command('NOOP', 250);
      // The other 50, in the next transaction on the same connection.
      await client.command('MAIL FROM:<raw@remote.test>', 250);
      for (let i = LIMIT; i < 150; i++) await client.command(`RCPT TO:<${user(i)}>`, 250);
      await client.command('DATA', 354);
      client.send('Subject: raw-150-rest\r\n\r\nbody\r\n.\r\n');
      await client.expect(250);
      await client.quit();
    } finally {
      client.destroy();
    }
    for (let i = 0; i < 150; i++) {
      await instance.waitForMessage(user(i), i < LIMIT ? 'raw-150-first' : 'raw-150-rest');
    }
    assert.equal(instance.readMaildir(user(149)).filter((m) => m.text.includes('raw-150-first')).length, 0);
  });
});
