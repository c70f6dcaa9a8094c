// End to end: sender authentication on the MX ([sender_auth]) against the real server, the test
// DNS server publishing SPF, DKIM, DMARC, ARC keys and PTR records, and nodemailer sending from
// loopback addresses that stand for other people's servers (only 127.0.0.1 is trusted here).
// Messages are signed in the test with mailauth and with Postern's own DKIM signer; what arrives
// is read from the Maildir, and the verdict from the message's log line.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dkimSign, sealMessage } from 'mailauth';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { dkimKeyPath, generateDkimPrivateKey, parseDkimKey } from '../src/dkim/dkim-key.js';
import { dkimRecord } from '../src/dkim/dkim-record.js';
import { DkimSigner } from '../src/dkim/signer.js';
import { TestDnsServer } from './support/dns-server.js';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { marker, PASSWORD } from './support/relay-world.js';

const HOSTNAME = 'mx.postern.test';
const ALICE = 'alice@postern.test';
/** Stands for good.test's outbound server: in its SPF record, with forward-confirmed reverse DNS. */
const GOOD_IP = '127.0.0.5';
/** Stands for a server nobody authorised, whose PTR name does not lead back to it. */
const STRANGER_IP = '127.0.0.7';
/** A forwarder that seals with ARC. */
const FORWARDER_IP = '127.0.0.9';

interface Sent {
  readonly code: number;
  readonly text: string;
}

/** Sends raw bytes to the MX port from `localAddress`; resolves with the final reply either way. */
async function sendRaw(port: number, localAddress: string, from: string, raw: Buffer | string, helo: string): Promise<Sent> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, localAddress, name: helo });
  try {
    const info = await transport.sendMail({ envelope: { from, to: [ALICE] }, raw });
    return { code: 250, text: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string };
    if (e.responseCode === undefined) throw err;
    return { code: e.responseCode, text: e.response ?? '' };
  } finally {
    transport.close();
  }
}

function compose(from: string, subject: string, extraHeaders: readonly string[] = [], body = 'The figures are attached.\r\n'): Buffer {
  return Buffer.from(
    [
      ...extraHeaders,
      `From: <${from}>`,
      `To: <${ALICE}>`,
      `Subject: ${subject}`,
      'Date: Mon, 1 Jan 2024 00:00:00 +0000',
      `Message-ID: <${subject}@sender.test>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      body,
    ].join('\r\n'),
  );
}

interface Key {
  readonly domain: string;
  readonly selector: string;
  readonly pem: string;
}

/** A fresh RSA key, its record published at <selector>._domainkey.<domain>. */
function publishKey(dns: TestDnsServer, domain: string, selector: string): Key {
  const pem = generateDkimPrivateKey('rsa');
  const record = dkimRecord(parseDkimKey(pem, domain, selector));
  dns.set(record.name, [{ type: 'TXT', strings: record.strings }]);
  return { domain, selector, pem };
}

async function signWithMailauth(message: Buffer, key: Key): Promise<Buffer> {
  const signature = { signingDomain: key.domain, selector: key.selector, privateKey: key.pem, algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' };
  const result = await dkimSign(message, { ...signature, signatureData: [signature], signTime: new Date() });
  assert.deepEqual(result.errors, []);
  return Buffer.concat([Buffer.from(result.signatures, 'latin1'), message]);
}

/** The unfolded values of every header field called `name` in the header section. */
function headerFields(text: string, name: string): string[] {
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  const unfolded = head.replace(/\r\n[ \t]/g, ' ');
  return unfolded
    .split('\r\n')
    .filter((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    .map((line) => line.slice(name.length + 1).trim());
}

function ourResults(text: string): string[] {
  return headerFields(text, 'Authentication-Results').filter((v) => v.toLowerCase().startsWith(`${HOSTNAME};`));
}

describe('[sender_auth] SPF, DKIM, DMARC, ARC and iprev on the MX', () => {
  let dns: TestDnsServer;
  let instance: PosternInstance;
  let server: PosternProcess;
  let keysDir: string;
  let good: Key;
  let lax: Key;
  let forwarder: Key;
  let otherForwarder: Key;

  /** The message log line of a transaction from `ip` whose outcome matches (a refused one has no queue id). */
  const lineFrom = (ip: string, outcome: RegExp) =>
    server.waitForLog((e) => e.msg === 'message' && e.client_ip === ip && typeof e.outcome === 'string' && outcome.test(e.outcome));

  const queueIdOf = (reply: Sent): string => {
    const id = /queued as (\S+)/.exec(reply.text)?.[1];
    assert.ok(id, reply.text);
    return id;
  };
  const lineOf = (reply: Sent) => {
    const id = queueIdOf(reply);
    return server.waitForLog((e) => e.msg === 'message' && e.queue_id === id);
  };

  before(async () => {
    dns = await TestDnsServer.start();
    keysDir = mkdtempSync(join(tmpdir(), 'postern-dkim-'));
    instance = new PosternInstance({
      hostname: HOSTNAME,
      // Only 127.0.0.1 is trusted: the other loopback addresses are strangers' servers.
      limits: { trusted_networks: ['127.0.0.1/32'] },
      relay: { dns_servers: [dns.address] },
      senderAuth: { spf_fail: 'record', arc_trusted_sealers: ['fwd.test'] },
      submission: true,
    });
    await instance.cliOk(['domain', 'add', 'postern.test']);
    await instance.addUser(ALICE, PASSWORD);

    good = publishKey(dns, 'good.test', 'sel');
    dns.set('good.test', [{ type: 'TXT', strings: [`v=spf1 ip4:${GOOD_IP} -all`] }]);
    dns.set('_dmarc.good.test', [{ type: 'TXT', strings: ['v=DMARC1; p=reject'] }]);
    dns.set('5.0.0.127.in-addr.arpa', [{ type: 'PTR', target: 'mail.good.test' }]);
    dns.set('mail.good.test', [{ type: 'A', address: GOOD_IP }]);
    // PTR to a name that resolves elsewhere: iprev fails.
    dns.set('7.0.0.127.in-addr.arpa', [{ type: 'PTR', target: 'mail.stranger.test' }]);
    dns.set('mail.stranger.test', [{ type: 'A', address: '192.0.2.7' }]);

    lax = publishKey(dns, 'lax.test', 'sel');
    dns.set('lax.test', [{ type: 'TXT', strings: [`v=spf1 ip4:${GOOD_IP} ip4:${FORWARDER_IP} -all`] }]);
    dns.set('_dmarc.lax.test', [{ type: 'TXT', strings: ['v=DMARC1; p=none'] }]);

    dns.set('_dmarc.strict.test', [{ type: 'TXT', strings: ['v=DMARC1; p=reject'] }]);
    dns.set('_dmarc.quarantined.test', [{ type: 'TXT', strings: ['v=DMARC1; p=quarantine'] }]);
    dns.set('_dmarc.postern.test', [{ type: 'TXT', strings: ['v=DMARC1; p=reject'] }]);
    dns.set('postern.test', [{ type: 'TXT', strings: ['v=spf1 -all'] }]);

    forwarder = publishKey(dns, 'fwd.test', 'arc');
    otherForwarder = publishKey(dns, 'other-fwd.test', 'arc');
    dns.set('fwd.test', [{ type: 'TXT', strings: [`v=spf1 ip4:${FORWARDER_IP} -all`] }]);

    server = await instance.start();
  });

  after(async () => {
    await stopAndDispose(server, instance);
    rmSync(keysDir, { recursive: true, force: true });
    await dns.close();
  });

  test('a message signed with mailauth from an authorised server passes everything, with one header of ours', async () => {
    const subject = marker('pass');
    const sent = await sendRaw(server.port(), GOOD_IP, 'bob@good.test', await signWithMailauth(compose('bob@good.test', subject), good), 'mail.good.test');
    assert.equal(sent.code, 250, sent.text);
    const delivered = await instance.waitForMessage(ALICE, subject);
    const results = ourResults(delivered.text);
    assert.equal(results.length, 1, delivered.text);
    const ar = results[0] ?? '';
    assert.match(ar, /spf=pass \(mx\.postern\.test: domain of bob@good\.test designates 127\.0\.0\.5 as permitted sender\) smtp\.mailfrom=good\.test;/);
    assert.match(ar, /dkim=pass [^;]*header\.d=good\.test/);
    assert.match(ar, /dmarc=pass [^;]*header\.from=good\.test/);
    assert.match(ar, /arc=none/);
    assert.match(ar, /iprev=pass \(mail\.good\.test\) policy\.iprev=127\.0\.0\.5/);
    const line = await lineOf(sent);
    const auth = line.sender_auth as Record<string, unknown>;
    assert.equal(auth.action, 'deliver');
    assert.deepEqual(auth.spf, { result: 'pass', domain: 'good.test' });
    assert.deepEqual(auth.dkim, [{ result: 'pass', domain: 'good.test', selector: 'sel' }]);
    assert.deepEqual(auth.dmarc, { result: 'pass', domain: 'good.test', policy: 'reject', pct: 100, applied: null });
    assert.deepEqual(auth.arc, { result: 'none', instance: null });
    assert.deepEqual(auth.iprev, { result: 'pass', ip: GOOD_IP, name: 'mail.good.test' });
  });

  test("a message signed by Postern's own DKIM signer passes DKIM and DMARC", async () => {
    const own = 'own.test';
    const pem = generateDkimPrivateKey('ed25519');
    writeFileSync(dkimKeyPath(keysDir, own, 'postern'), pem, { mode: 0o600 });
    const record = dkimRecord(parseDkimKey(pem, own, 'postern'));
    dns.set(record.name, [{ type: 'TXT', strings: record.strings }]);
    dns.set(`_dmarc.${own}`, [{ type: 'TXT', strings: ['v=DMARC1; p=reject'] }]);
    const signer = new DkimSigner({ keysDir, selector: 'postern', logger: pino({ level: 'silent' }) });
    const subject = marker('own-signer');
    const signed = await signer.sign(compose(`carol@${own}`, subject), own);
    // No SPF record for own.test: DKIM alone must carry DMARC.
    const sent = await sendRaw(server.port(), STRANGER_IP, `carol@${own}`, signed, 'mail.own.test');
    assert.equal(sent.code, 250, sent.text);
    const ar = ourResults((await instance.waitForMessage(ALICE, subject)).text)[0] ?? '';
    assert.match(ar, /spf=none/);
    assert.match(ar, /dkim=pass [^;]*header\.d=own\.test/);
    assert.match(ar, /dmarc=pass/);
    assert.match(ar, /iprev=fail \(mail\.stranger\.test does not resolve back to 127\.0\.0\.7\) policy\.iprev=127\.0\.0\.7/);
    const auth = (await lineOf(sent)).sender_auth as Record<string, unknown>;
    assert.deepEqual(auth.iprev, { result: 'fail', ip: STRANGER_IP, name: null });
  });

  test('a body altered in transit fails DKIM, and is delivered under p=none with the failure recorded', async () => {
    const subject = marker('altered');
    const signed = await signWithMailauth(compose('dave@lax.test', subject), lax);
    const altered = Buffer.from(signed.toString('latin1').replace('The figures are attached.', 'The figures are NOT attached.'), 'latin1');
    const sent = await sendRaw(server.port(), GOOD_IP, 'dave@lax.test', altered, 'mail.good.test');
    assert.equal(sent.code, 250, sent.text);
    const ar = ourResults((await instance.waitForMessage(ALICE, subject)).text)[0] ?? '';
    assert.match(ar, /dkim=fail [^;]*header\.d=lax\.test/);
    // SPF still passes and aligns, so DMARC passes.
    assert.match(ar, /dmarc=pass/);
    const auth = (await lineOf(sent)).sender_auth as Record<string, unknown>;
    assert.deepEqual(auth.dkim, [{ result: 'fail', domain: 'lax.test', selector: 'sel' }]);
  });

  test('a spoofed From of a p=reject domain is refused after DATA with 550 5.7.1 naming the domain and the checks', async () => {
    const subject = marker('spoofed-reject');
    const sent = await sendRaw(server.port(), STRANGER_IP, 'spammer@stranger.test', compose('ceo@strict.test', subject), 'mail.stranger.test');
    assert.equal(sent.code, 550, sent.text);
    assert.match(sent.text, /5\.7\.1 Message rejected: strict\.test publishes DMARC p=reject/);
    assert.match(sent.text, /spf=none smtp\.mailfrom=stranger\.test, dkim=none/);
    const line = await lineFrom(STRANGER_IP, /^550 5\.7\.1/);
    assert.equal(line.queue_id, null);
    const auth = line.sender_auth as Record<string, unknown>;
    assert.equal(auth.action, 'reject');
    assert.deepEqual(auth.dmarc, { result: 'fail', domain: 'strict.test', policy: 'reject', pct: 100, applied: 'reject' });
    assert.ok(!instance.readMaildir(ALICE).some((m) => m.text.includes(subject)));
  });

  test("a spoofed From of a p=quarantine domain is delivered to the Junk folder (Maildir++ .Junk), not the INBOX", async () => {
    const subject = marker('spoofed-quarantine');
    const sent = await sendRaw(server.port(), STRANGER_IP, 'spammer@stranger.test', compose('billing@quarantined.test', subject), 'mail.stranger.test');
    assert.equal(sent.code, 250, sent.text);
    const maildir = join(instance.dataDir, 'mail', 'postern.test', 'alice');
    const junkNew = join(maildir, '.Junk', 'new');
    const found = await waitForFile(junkNew, subject);
    assert.ok(existsSync(join(maildir, '.Junk', 'maildirfolder')), 'Maildir++ marks a folder with a maildirfolder file');
    assert.ok(existsSync(join(maildir, '.Junk', 'cur')) && existsSync(join(maildir, '.Junk', 'tmp')));
    const ar = ourResults(found)[0] ?? '';
    assert.match(ar, /dmarc=fail [^;]*header\.from=quarantined\.test policy\.dmarc=quarantine/);
    assert.ok(!instance.readMaildir(ALICE).some((m) => m.text.includes(subject)), 'not in the INBOX');
    const auth = (await lineOf(sent)).sender_auth as Record<string, unknown>;
    assert.equal(auth.action, 'quarantine');
  });

  test('an Authentication-Results field claiming our authserv-id is removed; one of another authserv-id is kept', async () => {
    const subject = marker('forged-ar');
    const forged = [
      `Authentication-Results: ${HOSTNAME}; dkim=pass header.d=bank.test; dmarc=pass header.from=bank.test`,
      // Folded, with a comment before the id and in upper case: still ours.
      `Authentication-Results: (forged) MX.POSTERN.TEST;`,
      '\tspf=pass smtp.mailfrom=bank.test',
      'Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=lax.test',
    ];
    const signed = await signWithMailauth(compose('erin@lax.test', subject, forged), lax);
    const sent = await sendRaw(server.port(), GOOD_IP, 'erin@lax.test', signed, 'mail.good.test');
    assert.equal(sent.code, 250, sent.text);
    const text = (await instance.waitForMessage(ALICE, subject)).text;
    const ours = ourResults(text);
    assert.equal(ours.length, 1, text);
    assert.doesNotMatch(ours[0] ?? '', /bank\.test/);
    assert.ok(!/MX\.POSTERN\.TEST/.test(text), text);
    assert.deepEqual(
      headerFields(text, 'Authentication-Results').filter((v) => v.startsWith('relay.elsewhere.test')),
      ['relay.elsewhere.test; spf=pass smtp.mailfrom=lax.test'],
    );
    // The removed fields were not signed, so the signature still verifies.
    assert.match(ours[0] ?? '', /dkim=pass/);
    assert.equal(((await lineOf(sent)).sender_auth as Record<string, unknown>).removed_fields, 2);
  });

  test('an ARC-sealed message (sealed by mailauth) validates: arc=pass', async () => {
    const subject = marker('arc');
    const original = await signWithMailauth(compose('frank@lax.test', subject), lax);
    const seal = await sealMessage(original, {
      signingDomain: forwarder.domain,
      selector: forwarder.selector,
      privateKey: forwarder.pem,
      authResults: 'fwd.test; dkim=pass header.d=lax.test; spf=pass smtp.mailfrom=lax.test',
      cv: 'none',
    });
    const sealed = Buffer.concat([seal, original]);
    const sent = await sendRaw(server.port(), FORWARDER_IP, 'frank@lax.test', sealed, 'mail.fwd.test');
    assert.equal(sent.code, 250, sent.text);
    const ar = ourResults((await instance.waitForMessage(ALICE, subject)).text)[0] ?? '';
    assert.match(ar, /arc=pass/);
    const auth = (await lineOf(sent)).sender_auth as Record<string, unknown>;
    assert.deepEqual(auth.arc, { result: 'pass', instance: 1 });
  });

  /** bob@good.test's signed message, as a mailing list at `list` changed it (a tag in the Subject) and sealed it. */
  async function listMail(subject: string, list: Key): Promise<Buffer> {
    const original = await signWithMailauth(compose('bob@good.test', subject), good);
    const changed = Buffer.from(original.toString('latin1').replace(`Subject: ${subject}`, `Subject: [list] ${subject}`), 'latin1');
    const seal = await sealMessage(changed, {
      signingDomain: list.domain,
      selector: list.selector,
      privateKey: list.pem,
      // What the list saw on arrival, before it changed the message.
      authResults: `${list.domain}; dkim=pass header.d=good.test; spf=pass smtp.mailfrom=good.test; dmarc=pass header.from=good.test`,
      cv: 'none',
    });
    return Buffer.concat([seal, changed]);
  }

  test('list mail from a p=reject domain: a trusted ARC sealer that saw dmarc=pass overrides the DMARC fail; an untrusted one does not', async () => {
    const subject = marker('arc-override');
    // The list sends from its own address: SPF passes for fwd.test, which is not the From domain.
    const sent = await sendRaw(server.port(), FORWARDER_IP, 'list-bounces@fwd.test', await listMail(subject, forwarder), 'mail.fwd.test');
    assert.equal(sent.code, 250, sent.text);
    const ar = ourResults((await instance.waitForMessage(ALICE, subject)).text)[0] ?? '';
    assert.match(ar, /dkim=fail [^;]*header\.d=good\.test/);
    assert.match(ar, /dmarc=fail [^;]*header\.from=good\.test policy\.dmarc=none/);
    assert.match(ar, /arc=pass/);
    const auth = (await lineOf(sent)).sender_auth as Record<string, unknown>;
    assert.equal(auth.action, 'deliver');
    assert.equal(auth.reason, 'dmarc good.test p=reject, overridden: ARC sealed by fwd.test (trusted), which saw dmarc=pass');

    const untrusted = marker('arc-untrusted');
    const refused = await sendRaw(server.port(), FORWARDER_IP, 'list-bounces@fwd.test', await listMail(untrusted, otherForwarder), 'mail.fwd.test');
    assert.equal(refused.code, 550, refused.text);
    assert.match(refused.text, /5\.7\.1 Message rejected: good\.test publishes DMARC p=reject/);
  });

  test('an SPF fail alone is recorded and delivered by default, and refused with 550 5.7.23 once spf_fail = "reject"', async () => {
    // good.test's SPF does not list STRANGER_IP ("-all"); the From domain has no DMARC record.
    const first = marker('spf-fail-recorded');
    const sent = await sendRaw(server.port(), STRANGER_IP, 'bob@good.test', compose('bob@nodmarc.test', first), 'mail.stranger.test');
    assert.equal(sent.code, 250, sent.text);
    const ar = ourResults((await instance.waitForMessage(ALICE, first)).text)[0] ?? '';
    assert.match(ar, /spf=fail [^;]*smtp\.mailfrom=good\.test;/);
    assert.match(ar, /dmarc=none/);

    const config = readFileSync(instance.configPath, 'utf8');
    assert.match(config, /spf_fail = "record"/);
    writeFileSync(instance.configPath, config.replace('spf_fail = "record"', 'spf_fail = "reject"'));
    try {
      process.kill(server.pid, 'SIGHUP');
      await server.waitForLog((e) => e.msg === 'reloaded');
      const second = marker('spf-fail-rejected');
      const refused = await sendRaw(server.port(), STRANGER_IP, 'bob@good.test', compose('bob@nodmarc.test', second), 'mail.stranger.test');
      assert.equal(refused.code, 550, refused.text);
      assert.match(refused.text, /5\.7\.23 .*good\.test/);
    } finally {
      writeFileSync(instance.configPath, config);
      process.kill(server.pid, 'SIGHUP');
    }
  });

  test('a trusted network is not checked: no header of ours, no verdict, even for a spoofed p=reject From', async () => {
    const subject = marker('trusted');
    const sent = await sendRaw(server.port(), '127.0.0.1', 'spammer@stranger.test', compose('ceo@strict.test', subject), 'localhost');
    assert.equal(sent.code, 250, sent.text);
    assert.deepEqual(ourResults((await instance.waitForMessage(ALICE, subject)).text), []);
    assert.equal((await lineOf(sent)).sender_auth, null);
  });

  test('authenticated submission is not checked, from an untrusted address and with a p=reject domain whose SPF fails', async () => {
    const subject = marker('submitted');
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: server.port('submission'),
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      localAddress: STRANGER_IP,
      auth: { user: ALICE, pass: PASSWORD },
    });
    let response: string;
    try {
      response = (await transport.sendMail({ from: ALICE, to: ALICE, subject, text: 'from my own account\n' })).response;
    } finally {
      transport.close();
    }
    const delivered = await instance.waitForMessage(ALICE, subject);
    assert.deepEqual(ourResults(delivered.text), []);
    assert.equal((await lineOf({ code: 250, text: response })).sender_auth, null);
  });
});

/** Polls a Maildir directory for a file containing `needle`; returns its text. */
async function waitForFile(dir: string, needle: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (existsSync(dir)) {
      for (const name of readdirSync(dir)) {
        const text = readFileSync(join(dir, name), 'latin1');
        if (text.includes(needle)) return text;
      }
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for "${needle}" in ${dir}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
