// Local delivery over LMTP to a real Dovecot (Debian's dovecot-lmtpd), end to end: mail submitted
// to Postern with SMTP AUTH (nodemailer) goes over LMTP to a private Dovecot configured by
// `postern dovecot config` (test/support/dovecot.ts), and comes back out over IMAPS to Python's
// imaplib, logged in with the account's Postern password. Dovecot's quota plugin, with
// quota_full_tempfail, makes Dovecot itself answer 4xx after the dot for a full mailbox: that
// recipient alone is retried, the other is delivered once.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from './support/dns-server.js';
import { dovecotListeners, TestDovecot } from './support/dovecot.js';
import { imaplib } from './support/imaplib.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import { stopAndDispose } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, PASSWORD, relayInstance, submit } from './support/relay-world.js';

const at = (local: string): string => `${local}@${LOCAL_DOMAIN}`;
const ALICE = at('alice'); // the sender
const BOB = at('bob');
const FULL = at('full'); // at its quota when the two-recipient message comes
const ROOMY = at('roomy');

/**
 * A quota of one message per mailbox (maildir++ quota, counted by Dovecot), and a full mailbox is
 * a temporary failure (452 4.2.2 rather than 552 5.2.2): the sender's server should try again.
 */
const QUOTA = [
  'mail_plugins = $mail_plugins quota',
  'plugin {',
  '  quota = maildir:User quota',
  '  quota_rule = *:messages=1',
  '}',
  // An LDA/LMTP setting (15-lda.conf), not the plugin's.
  'quota_full_tempfail = yes',
];

const skip = TestDovecot.available();

describe('local delivery over LMTP to a real Dovecot, read back over IMAPS', { skip }, () => {
  let dns: TestDnsServer;
  let instance: PosternInstance;
  let server: PosternProcess;
  let dovecot: TestDovecot;
  let lmtpPeer = '';

  before(async () => {
    dns = await TestDnsServer.start();
    const listeners = await dovecotListeners();
    lmtpPeer = listeners.delivery.lmtp;
    instance = await relayInstance({ dns, users: [ALICE, BOB, FULL, ROOMY], extra: { dovecot: listeners.dovecot, delivery: listeners.delivery } });
    // Postern first: Dovecot presents the certificate it generates on its first start.
    server = await instance.start();
    dovecot = await TestDovecot.start(instance, { extraSettings: QUOTA });
  });

  after(async () => {
    await stopAndDispose(server, instance);
    await dovecot?.stop();
    await dns?.close();
  });

  /** The messages in the user's INBOX whose Subject is `subject`, as imaplib fetched them. */
  async function inbox(user: string, subject: string): Promise<string[]> {
    const out = await imaplib(
      dovecot.port('imaps'),
      `
m.login(${JSON.stringify(user)}, ${JSON.stringify(PASSWORD)})
m.select('INBOX')
typ, data = m.search(None, 'SUBJECT', ${JSON.stringify(JSON.stringify(subject))})
for num in data[0].split():
    typ, msg = m.fetch(num, '(RFC822)')
    log(msg[0][1])
m.logout()
`,
    );
    const error = out.find((x) => typeof x === 'string' && x.startsWith('error: '));
    assert.equal(error, undefined, `IMAP: ${String(error)}\n${dovecot.logTail()}`);
    return out as string[];
  }

  async function waitForInbox(user: string, subject: string, count = 1, timeoutMs = 20_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = await inbox(user, subject);
      if (found.length >= count) return found;
      if (Date.now() > deadline) throw new Error(`timed out: ${found.length} of ${count} "${subject}" in ${user}'s INBOX\n${server.log()}\n${dovecot.logTail()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Copies in the user's Maildir (new/ and cur/: an IMAP SELECT moves them on) that contain `text`. */
  const maildirCopies = (user: string, text: string): number =>
    ['new', 'cur']
      .map((sub) => join(dirname(instance.maildirNew(user)), sub))
      .filter((dir) => existsSync(dir))
      .flatMap((dir) => readdirSync(dir).map((name) => readFileSync(join(dir, name), 'latin1')))
      .filter((t) => t.includes(text)).length;

  const attempt = (recipient: string, status: string): Promise<Record<string, unknown>> =>
    server.waitForLog((e) => e.msg === 'local delivery attempt' && e.recipient === recipient && e.status === status);

  test('submitted with AUTH, delivered over LMTP by Dovecot, fetched over IMAPS with the Postern password', async () => {
    const m = marker('dovecot-lmtp');
    await submit(server.port('submission'), { from: ALICE, to: [BOB], marker: m });
    const [copy, ...more] = await waitForInbox(BOB, m);
    assert.equal(more.length, 0, 'one copy');
    assert.match(copy ?? '', new RegExp(`^Subject: ${m}\\r?$`, 'm'));
    // Dovecot did the final delivery: its own Delivered-To and Return-Path, once each.
    assert.equal((copy ?? '').match(/^Delivered-To: /gm)?.length, 1);
    assert.match(copy ?? '', /^Return-Path: <alice@postern\.test>\r?$/m);
    assert.match(copy ?? '', /by mx\.postern\.test \(Postern\) with ESMTPSA/);
    const line = await attempt(BOB, 'delivered');
    assert.equal(line.remote_host, lmtpPeer);
    assert.match(String(line.reply), /^250 2\.0\.0 /);
    assert.equal(maildirCopies(BOB, m), 1, 'the copy is in the Maildir that Postern serves over POP3');
  });

  test("Dovecot's 452 for a full mailbox: that recipient alone is retried, the other delivered once", async () => {
    const filler = marker('filler');
    await submit(server.port('submission'), { from: ALICE, to: [FULL], marker: filler });
    await waitForInbox(FULL, filler);

    const m = marker('over-quota');
    await submit(server.port('submission'), { from: ALICE, to: [FULL, ROOMY], marker: m });
    const deferred = await attempt(FULL, 'deferred');
    assert.match(String(deferred.reply), /^452 4\.2\.2 .*[Qq]uota/, JSON.stringify(deferred));
    await waitForInbox(ROOMY, m);

    // The owner makes room, as a person would: deletes the filler over IMAP.
    await imaplib(
      dovecot.port('imaps'),
      `
m.login(${JSON.stringify(FULL)}, ${JSON.stringify(PASSWORD)})
m.select('INBOX')
typ, data = m.search(None, 'SUBJECT', ${JSON.stringify(JSON.stringify(filler))})
for num in data[0].split():
    m.store(num, '+FLAGS', '\\\\Deleted')
m.expunge()
m.logout()
`,
    );
    const [copy] = await waitForInbox(FULL, m);
    assert.ok(copy?.includes(m));
    const roomy = await inbox(ROOMY, m);
    assert.equal(roomy.length, 1, 'the recipient Dovecot accepted the first time got no second copy');
    const retried = await server.waitForLog(
      (e) => e.msg === 'local delivery attempt' && e.queue_id === deferred.queue_id && e.recipient === FULL && e.status === 'delivered',
    );
    assert.ok(Number(retried.attempts) >= 2, JSON.stringify(retried));
    const roomyAttempts = server
      .log()
      .split('\n')
      .filter((l) => l.includes('"msg":"local delivery attempt"') && l.includes(`"queue_id":"${String(deferred.queue_id)}"`) && l.includes(`"recipient":"${ROOMY}"`));
    assert.equal(roomyAttempts.length, 1, 'the retry went to full@ alone');
    // Dovecot's log names each delivery: roomy@ once, full@ once (after its refusals).
    const saved = (user: string): number => dovecot.log().split('\n').filter((l) => l.includes(`lmtp(${user})`) && /saved mail to INBOX/.test(l)).length;
    assert.equal(saved(ROOMY), 1, dovecot.logTail());
  });
});
