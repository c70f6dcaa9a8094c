// IMAP through Dovecot, end to end: the real Postern beside a private Dovecot configured by
// `postern dovecot config` (test/support/dovecot.ts), Python's imaplib logging in over IMAPS with
// Postern passwords, Dovecot's LMTP, and Postern's POP3 on the Maildirs Dovecot has touched.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { TestDnsServer } from './support/dns-server.js';
import { dovecotListeners, TestDovecot } from './support/dovecot.js';
import { runTool } from './support/external-tool.js';
import { imaplib } from './support/imaplib.js';
import { poplib } from './support/poplib.js';
import { delay, PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { ScramClient } from '../src/sasl/scram-client.js';
import { SmtpClient } from './support/smtp-client.js';

const ALICE = 'alice@example.test';
const PASSWORD = 'correct horse battery staple';
const AUTH_FAILED = 'error: [AUTHENTICATIONFAILED] Authentication failed.';

/**
 * A fresh client address for each login that is meant to fail: Dovecot delays every further
 * failure from one IP (its auth penalty, up to 15 s), which is its defence and not under test.
 */
let nextClient = 10;
function freshClientAddress(): string {
  return `127.0.0.${nextClient++}`;
}

async function eventuallyTrue(probe: () => boolean, what: string, server: PosternProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (probe()) return;
    await delay(50);
  }
  throw new Error(`timed out waiting for ${what}; log: ${server.log().slice(-3000)}`);
}

async function deliverByMx(port: number, rcpt: string, subject: string): Promise<void> {
  const client = await SmtpClient.open(port);
  try {
    const reply = await client.sendMail('sender@remote.test', [rcpt], `Subject: ${subject}\r\n\r\nhello from ${subject}\r\n`);
    assert.equal(reply.code, 250, reply.text);
    await client.quit();
  } finally {
    client.destroy();
  }
}

/** imaplib's LOGIN; the result, or the error line. */
async function login(port: number, user: string, password: string, sourceAddress?: string): Promise<unknown> {
  const out = await imaplib(port, `log(m.login(${JSON.stringify(user)}, ${JSON.stringify(password)}))\nm.logout()`, sourceAddress === undefined ? {} : { sourceAddress });
  return out[0];
}

describe('IMAP through Dovecot over Postern accounts and Maildirs', { skip: TestDovecot.available({ pop3s: true }) }, () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let dovecot: TestDovecot | undefined;
  let dns: TestDnsServer;

  before(async () => {
    dns = await TestDnsServer.start();
    // A domain whose DMARC policy quarantines, for the Junk folder test; only 127.0.0.1 is
    // trusted, so a client on another loopback address has its sender checked.
    dns.set('_dmarc.quarantined.test', [{ type: 'TXT', strings: ['v=DMARC1; p=quarantine'] }]);
    instance = new PosternInstance({
      ...(await dovecotListeners()),
      pop3: true,
      submission: false,
      relay: { dns_servers: [dns.address] },
      limits: { trusted_networks: ['127.0.0.1/32'] },
    });
    await instance.cliOk(['domain', 'add', 'example.test']);
    await instance.addUser(ALICE, PASSWORD);
    server = await instance.start();
    dovecot = await TestDovecot.start(instance, { pop3s: true });
  });

  after(async () => {
    try {
      await dovecot?.stop();
      assert.deepEqual(dovecot?.processes(), [], 'no Dovecot process outlives stop()');
    } finally {
      await stopAndDispose(server, instance);
      await dns.close();
    }
  });

  test('quarantined mail (DMARC p=quarantine) goes over LMTP to the folder Dovecot lists as Junk, not the INBOX', async () => {
    const subject = `junk-${randomUUID()}`;
    const client = await SmtpClient.connect(server.port('mx'), '127.0.0.1', '127.0.0.60');
    try {
      await client.expect(220);
      await client.command('EHLO mail.stranger.test', 250);
      const reply = await client.sendMail('spammer@stranger.test', [ALICE], `From: <billing@quarantined.test>\r\nSubject: ${subject}\r\n\r\npay now\r\n`);
      assert.equal(reply.code, 250, reply.text);
      await client.quit();
    } finally {
      client.destroy();
    }
    // Delivered over Dovecot's LMTP to alice+Junk@, which Dovecot files in Junk.
    const junk = join(instance.maildirNew(ALICE), '..', '.Junk', 'new');
    await eventuallyTrue(() => existsSync(junk) && readdirSync(junk).length > 0, `a message in ${junk}`, server);
    const out = await imaplib(
      dovecot!.port('imaps'),
      `
log(m.login('${ALICE}', '${PASSWORD}'))
for attempt in range(100):
    typ, data = m.select('Junk', readonly=True)
    if typ == 'OK' and int(data[0]) > 0:
        break
    time.sleep(0.1)
log(m.list())
typ, data = m.search(None, 'SUBJECT', '"${subject}"')
log(data)
m.select('INBOX', readonly=True)
typ, data = m.search(None, 'SUBJECT', '"${subject}"')
log(data)
m.logout()
`,
    );
    assert.deepEqual(out[0], ['OK', ['Logged in']]);
    const [status, folders] = out[1] as [string, string[]];
    assert.equal(status, 'OK');
    assert.ok(folders.some((f) => /"?Junk"?$/.test(f)), `LIST shows Junk: ${JSON.stringify(folders)}`);
    assert.match(String((out[2] as string[])[0]), /^\d+$/, 'the message is in Junk');
    assert.deepEqual(out[3], [''], 'and not in the INBOX');
  });

  test('imaplib over IMAPS: the Postern password, the mail Postern delivered, the certificate Postern presents', async () => {
    const subject = `imap-${randomUUID()}`;
    await deliverByMx(server.port('mx'), ALICE, subject);
    await instance.waitForMessage(ALICE, subject);
    const out = await imaplib(
      dovecot!.port('imaps'),
      `
log(m.login('${ALICE}', '${PASSWORD}'))
log(m.select('INBOX', readonly=True))
typ, data = m.search(None, 'SUBJECT', '"${subject}"')
log(data)
typ, data = m.fetch(data[0].split()[-1], '(BODY.PEEK[])')
log(data[0][1])
m.logout()
`,
      // Verified against Postern's generated certificate: Dovecot presents the same one.
      { caFile: join(instance.dataDir, 'tls', 'cert.pem') },
    );
    assert.deepEqual(out[0], ['OK', ['Logged in']]);
    assert.equal((out[1] as [string])[0], 'OK');
    assert.match(String((out[2] as string[])[0]), /^\d+$/);
    assert.match(String(out[3]), new RegExp(`Subject: ${subject}\r\n\r\nhello from ${subject}`));
    assert.match(String(out[3]), /^Return-Path: <sender@remote\.test>\r\nDelivered-To: alice@example\.test\r\n/);
  });

  test("a local part that needs quoting in SQL and encoding on disk: Dovecot finds the Maildir Postern delivered to", async () => {
    const user = "o'brien@example.test";
    await instance.addUser(user, 'irish coffee');
    const subject = `quote-${randomUUID()}`;
    await deliverByMx(server.port('mx'), user, subject);
    // Postern's Maildir for it is example.test/o%27brien (src/mail/mailbox-directory.ts).
    const maildirNew = join(instance.dataDir, 'mail', 'example.test', 'o%27brien', 'new');
    for (const deadline = Date.now() + 20_000; !existsSync(maildirNew) || readdirSync(maildirNew).length === 0; await delay(50)) {
      assert.ok(Date.now() < deadline, `no delivery into ${maildirNew}`);
    }
    const out = await imaplib(
      dovecot!.port('imaps'),
      `
log(m.login(${JSON.stringify(user)}, 'irish coffee'))
m.select('INBOX', readonly=True)
log(m.search(None, 'SUBJECT', '"${subject}"')[1])
`,
    );
    assert.deepEqual(out[0], ['OK', ['Logged in']]);
    assert.deepEqual(out[1], ['1']);
  });

  test('a wrong password and an unknown user get the same answer', async () => {
    const wrong = await login(dovecot!.port('imaps'), ALICE, 'not the password', freshClientAddress());
    const unknown = await login(dovecot!.port('imaps'), 'nobody@example.test', PASSWORD, freshClientAddress());
    assert.equal(wrong, AUTH_FAILED);
    assert.equal(unknown, AUTH_FAILED);
  });

  test('postern user passwd counts at once in the running Dovecot: the new password works, the old one fails', async () => {
    const user = 'passwd@example.test';
    await instance.addUser(user, 'the first password');
    assert.deepEqual(await login(dovecot!.port('imaps'), user, 'the first password'), ['OK', ['Logged in']]);
    const master = dovecot!.processes();
    await instance.cliOk(['user', 'passwd', user, '--password-stdin'], 'the second password\n');
    assert.deepEqual(await login(dovecot!.port('imaps'), user, 'the second password'), ['OK', ['Logged in']]);
    assert.equal(await login(dovecot!.port('imaps'), user, 'the first password', freshClientAddress()), AUTH_FAILED);
    assert.ok(master.every((pid) => dovecot!.processes().includes(pid)), 'the same Dovecot, not restarted');
  });

  test('a user removed in Postern cannot log in', async () => {
    const user = 'leaver@example.test';
    await instance.addUser(user, 'a password to forget');
    assert.deepEqual(await login(dovecot!.port('imaps'), user, 'a password to forget'), ['OK', ['Logged in']]);
    await instance.cliOk(['user', 'remove', user]);
    assert.equal(await login(dovecot!.port('imaps'), user, 'a password to forget', freshClientAddress()), AUTH_FAILED);
  });

  test('an account without a SCRAM-SHA-256 secret (password set before SCRAM) cannot log in until its next passwd', async () => {
    const user = 'old@example.test';
    await instance.addUser(user, 'an old password');
    // What migration 3 left for accounts that existed before it.
    const db = new Database(join(instance.dataDir, 'postern.db'));
    try {
      db.prepare('UPDATE users SET scram_sha1 = NULL, scram_sha256 = NULL WHERE address = ?').run(user);
    } finally {
      db.close();
    }
    assert.equal(await login(dovecot!.port('imaps'), user, 'an old password', freshClientAddress()), AUTH_FAILED);
    await instance.cliOk(['user', 'passwd', user, '--password-stdin'], 'an old password\n');
    assert.deepEqual(await login(dovecot!.port('imaps'), user, 'an old password'), ['OK', ['Logged in']]);
  });

  test('a non-ASCII password works; one that SASLprep would change is refused while Dovecot serves IMAP', async () => {
    const user = 'unicode@example.test';
    const password = 'pässwörd ünïcødé ß 密码';
    await instance.addUser(user, password);
    // AUTHENTICATE PLAIN (RFC 4616) carries UTF-8; LOGIN's quoted strings are ASCII in imaplib.
    const out = await imaplib(
      dovecot!.port('imaps'),
      `log(m.authenticate('PLAIN', lambda _: ('\\0${user}\\0' + ${JSON.stringify(password)}).encode('utf-8')))`,
    );
    assert.equal((out[0] as [string])[0], 'OK', JSON.stringify(out));
    const refused = await instance.cli(['user', 'passwd', user, '--password-stdin'], 'no\u00a0break space\n');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^postern: this password changes under SASLprep .* it would not work over IMAP; choose another password\n$/);
  });

  test('SCRAM-SHA-256 from the stored keys: Dovecot proves it holds the ServerKey Postern derived', async () => {
    const client = new ScramClient({ hash: 'sha256', username: ALICE, password: PASSWORD });
    const socket = await imapsSocket(dovecot!.port('imaps'));
    try {
      const lines = lineReader(socket);
      assert.match(await lines.next(), /^\* OK .*AUTH=SCRAM-SHA-256/);
      socket.write(`a1 AUTHENTICATE SCRAM-SHA-256 ${Buffer.from(client.clientFirst()).toString('base64')}\r\n`);
      const first = await lines.next();
      assert.match(first, /^\+ /);
      socket.write(`${Buffer.from(client.clientFinal(Buffer.from(first.slice(2), 'base64').toString())).toString('base64')}\r\n`);
      const final = await lines.next();
      assert.match(final, /^\+ /, final);
      client.verifyServerFinal(Buffer.from(final.slice(2), 'base64').toString());
      socket.write('\r\n');
      assert.match(await lines.next(), /^a1 OK /);
    } finally {
      socket.destroy();
    }
  });

  test("Postern's POP3 after Dovecot: same UIDL and size once the message is seen and moved to cur/", async () => {
    const user = 'popper@example.test';
    const password = 'read by both';
    await instance.addUser(user, password);
    const subject = `seen-${randomUUID()}`;
    await deliverByMx(server.port('mx'), user, subject);
    await instance.waitForMessage(user, subject);
    const list = `
log(p.user('${user}'))
log(p.pass_('${password}'))
log([l.decode() for l in p.list()[1]])
log([l.decode() for l in p.uidl()[1]])
resp, lines, octets = p.retr(1)
log([l.decode('latin1') for l in lines])
p.quit()
`;
    const before = await poplib(server.port('pop3s'), list, { implicitTls: true });
    const imap = await imaplib(
      dovecot!.port('imaps'),
      `
log(m.login('${user}', '${password}'))
m.select('INBOX')
log(m.store('1', '+FLAGS', '\\\\Seen \\\\Flagged'))
m.logout()
`,
    );
    assert.equal((imap[1] as [string])[0], 'OK', JSON.stringify(imap));
    const maildir = join(instance.dataDir, 'mail', 'example.test', 'popper');
    assert.deepEqual(readdirSync(join(maildir, 'new')), [], 'Dovecot moved the message out of new/');
    assert.match(readdirSync(join(maildir, 'cur')).join(), /:2,FS$/, 'flags in the file name (Maildir info)');
    assert.ok(readdirSync(maildir).includes('dovecot-uidlist'), 'Dovecot keeps its own files beside new/ and cur/');
    assert.equal(
      statSync(join(maildir, 'dovecot-uidlist')).uid,
      statSync(join(instance.dataDir, 'postern.db')).uid,
      "Dovecot wrote as Postern's account",
    );

    const after = await poplib(server.port('pop3s'), list, { implicitTls: true });
    assert.deepEqual(after, before, 'the same listing, UIDL and content');
    assert.ok((after[5] as string[]).includes(`Subject: ${subject}`), JSON.stringify(after));
  });

  test("Dovecot's LMTP writes into the Maildir Postern's POP3 serves", async () => {
    const user = 'lmtp@example.test';
    await instance.addUser(user, 'lmtp password');
    const subject = `lmtp-${randomUUID()}`;
    const lmtp = await runTool('python3', [
      '-c',
      `
import smtplib
c = smtplib.LMTP('127.0.0.1', ${dovecot!.port('lmtp')})
c.sendmail('sender@remote.test', ['${user}'], b'Subject: ${subject}\\r\\n\\r\\nvia LMTP\\r\\n')
c.quit()
`,
    ]);
    assert.equal(lmtp.code, 0, `${lmtp.stderr}\n${dovecot!.logTail()}`);
    const out = await poplib(
      server.port('pop3s'),
      `
p.user('${user}')
p.pass_('lmtp password')
count, size = p.stat()
log([count, size])
log([l.decode() for l in p.list()[1]])
resp, lines, octets = p.retr(1)
log([l.decode('latin1') for l in lines])
p.quit()
`,
      { implicitTls: true },
    );
    assert.equal((out[1] as number[])[0], 1, JSON.stringify(out));
    const lines = out[3] as string[];
    assert.ok(lines.includes(`Subject: ${subject}`), lines.join('\n'));
    // The size POP3 announces is the octets RETR sends (CRLF line ends), from Dovecot's ,W= field.
    const sent = lines.reduce((sum, l) => sum + Buffer.byteLength(l, 'latin1') + 2, 0);
    assert.equal(Number(String((out[2] as string[])[0]).split(' ')[1]), sent);
  });

  test('logins while Postern writes to its store: no lock errors, and the store stays the service account\'s', async () => {
    const users = ['load1@example.test', 'load2@example.test'];
    for (const user of users) await instance.addUser(user, 'under load');
    await instance.addUser('writer@example.test', 'changes often');
    const logins = imaplib(
      dovecot!.port('imaps'),
      `
import concurrent.futures
def one(n):
    c = Client('127.0.0.1', ${dovecot!.port('imaps')}, ssl_context=ctx, timeout=30)
    try:
        return c.login(${JSON.stringify(users)}[n % 2], 'under load')[0]
    finally:
        c.logout()
with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
    log(list(pool.map(one, range(40))))
`,
    );
    // Meanwhile Postern writes: messages (queue rows) and password changes (users rows).
    const writes = Promise.all([
      ...Array.from({ length: 20 }, (_, i) => deliverByMx(server.port('mx'), ALICE, `load-${i}`)),
      ...[1, 2, 3].map((n) => instance.cliOk(['user', 'passwd', 'writer@example.test', '--password-stdin'], `changed ${n} times\n`)),
    ]);
    const [out] = await Promise.all([logins, writes]);
    assert.deepEqual(out[0], Array.from({ length: 40 }, () => 'OK'), dovecot!.logTail());
    assert.doesNotMatch(dovecot!.log(), /locked|busy|sqlite.*(error|failed)/i);
    const owner = statSync(join(instance.dataDir, 'postern.db')).uid;
    for (const name of readdirSync(instance.dataDir).filter((n) => n.startsWith('postern.db'))) {
      const stat = statSync(join(instance.dataDir, name));
      assert.equal(stat.uid, owner, `${name} belongs to the account Postern runs as`);
      assert.equal(stat.mode & 0o777, 0o600, `${name} stays private`);
    }
    assert.notEqual(owner, 0, 'not root: Postern and Dovecot both run as the service account');
    assert.equal(readFileSync(dovecot!.configPath, 'utf8').includes('auth_cache_size = 0'), true);
  });
});

function imapsSocket(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Lines (CRLF removed) as they arrive; next() waits for the next one. */
function lineReader(socket: TLSSocket): { next(): Promise<string> } {
  let buffered = '';
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  socket.setEncoding('latin1').on('data', (chunk: string) => {
    buffered += chunk;
    for (let i = buffered.indexOf('\r\n'); i >= 0; i = buffered.indexOf('\r\n')) {
      lines.push(buffered.slice(0, i));
      buffered = buffered.slice(i + 2);
    }
    wake?.();
  });
  return {
    async next(): Promise<string> {
      while (lines.length === 0) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no line from the server; got so far: ${JSON.stringify(buffered)}`)), 10_000);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return lines.shift() as string;
    },
  };
}
