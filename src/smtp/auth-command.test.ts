import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TEST_AUDIENCE, TEST_ISSUER, TestTokenIssuer } from '../../test/support/test-token-issuer.js';
import type { SaslMechanism } from '../sasl/mechanism.js';
import { createMechanisms } from '../sasl/registry.js';
import { ScramClient } from '../sasl/scram-client.js';
import { MemoryCredentials } from '../../test/support/test-credentials.js';
import { decodeBase64 } from '../sasl/sasl-text.js';
import { openAuth, refuseAuth, type AuthState } from './auth-command.js';
import type { TlsInfo } from '../mail/tls-info.js';
import type { SessionConfig } from './session-host.js';
import { EHLO, TLS, codes, converse, feed, harness, parseReplies, type Harness } from '../../test/support/test-session.js';

const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');
const plain = (user: string, password: string): string => b64(`\0${user}\0${password}`);
const ALICE = 'alice@example.test';
const PASSWORD = 'correct horse battery staple';

let issuer: TestTokenIssuer;
let mechanisms: SaslMechanism[];

before(async () => {
  issuer = new TestTokenIssuer();
  const credentials = await MemoryCredentials.withPasswords({ [ALICE]: PASSWORD });
  mechanisms = createMechanisms({
    credentials,
    hostname: 'mx.example',
    enabled: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2'],
    oauth: { jwksFile: issuer.jwksFile, issuer: TEST_ISSUER, audience: TEST_AUDIENCE, identityClaim: 'email' },
  });
});
after(() => issuer.close());

/** A submission listener: AUTH after TLS, and MAIL needs it. */
function submission(extra: Partial<SessionConfig> = {}): { config: Partial<SessionConfig>; tls?: TlsInfo } {
  return { config: { listener: 'submission', auth: 'after-tls', requireAuth: true, mechanisms, ...extra }, tls: TLS };
}

async function session(input: string, options = submission()) {
  return converse(input, options);
}

describe('refuseAuth', () => {
  const ready: AuthState = { offered: 'after-tls', tls: true, ehlo: true, authenticated: false, inTransaction: false };
  const cases: Array<[Partial<AuthState>, string | undefined]> = [
    [{}, undefined],
    [{ offered: 'never' }, '502 5.5.1'],
    [{ tls: false }, '530 5.7.0'],
    [{ tls: false, ehlo: false }, '530 5.7.0'],
    [{ ehlo: false }, '503 5.5.1'],
    [{ authenticated: true }, '503 5.5.1'],
    [{ inTransaction: true }, '503 5.5.1'],
  ];
  for (const [change, expected] of cases) {
    test(`${JSON.stringify(change)} -> ${expected ?? 'go ahead'}`, () => {
      const r = refuseAuth({ ...ready, ...change });
      assert.equal(r && `${r.code} ${r.enhanced}`, expected);
    });
  }
});

describe('openAuth', () => {
  const fake = (name: string): SaslMechanism => ({ name, available: () => true, begin: () => assert.fail('not begun') });
  const offered = [fake('PLAIN'), fake('LOGIN')];
  test('mechanism names are case-insensitive; "=" is an empty initial response', () => {
    const o = openAuth('plain =', offered);
    assert.equal(o.kind, 'open');
    if (o.kind === 'open') assert.deepEqual([o.mechanism.name, o.initialResponse], ['PLAIN', Buffer.alloc(0)]);
    const none = openAuth('LOGIN', offered);
    assert.ok(none.kind === 'open' && none.initialResponse === undefined);
  });
  const refusals: Array<[string, string]> = [
    ['SCRAM-SHA-256', '504 5.5.4'],
    ['PLAIN not*base64', '501 5.5.2'],
    ['PLAIN abc', '501 5.5.2'],
    ['PLAIN a b', '501 5.5.4'],
    ['PLAIN  AGEAYg==', '501 5.5.4'],
  ];
  for (const [argument, expected] of refusals) {
    test(`${JSON.stringify(argument)} -> ${expected}`, () => {
      const o = openAuth(argument, offered);
      assert.ok(o.kind === 'refused');
      assert.equal(`${o.reply.code} ${o.reply.enhanced}`, expected);
    });
  }
});

describe('decodeBase64', () => {
  test('strict: padding required, no junk, empty is empty', () => {
    assert.deepEqual(decodeBase64('AGEAYg=='), Buffer.from('\0a\0b'));
    assert.deepEqual(decodeBase64(''), Buffer.alloc(0));
    for (const bad of ['AGEAYg', 'AGEAYg=', 'AGE AYg==', 'AGEAYg==\t', '====', 'A===', 'AG-_']) {
      assert.equal(decodeBase64(bad), undefined, bad);
    }
  });
});

describe('AUTH in the session', () => {
  test('before TLS: no AUTH in EHLO, AUTH is 530, MAIL is 530 (never a password in clear)', async () => {
    const { replies, guard } = await session(`${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\nMAIL FROM:<${ALICE}>\r\n`, {
      config: submission().config,
    });
    assert.doesNotMatch(replies[0] ?? '', /AUTH/);
    assert.deepEqual(codes(replies.slice(1)), ['530 5.7.0', '530 5.7.0']);
    assert.equal(replies[1], '530 5.7.0 Must issue a STARTTLS command first');
    assert.equal(replies[2], '530 5.7.0 Authentication required');
    assert.equal(guard.failures.length + guard.successes.length, 0);
  });

  test('EHLO lists the mechanisms usable on the connection; -PLUS only with channel binding', async () => {
    const without = await session(EHLO);
    assert.match(without.replies[0] ?? '', /\|250 AUTH SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN CRAM-MD5 XOAUTH2$/);
    const bound = await session(EHLO, { ...submission(), tls: { ...TLS, channelBinding: randomBytes(32) } });
    assert.match(bound.replies[0] ?? '', /\|250 AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN /);
  });

  test('AUTH PLAIN with an initial response: 235, then the transaction carries the account', async () => {
    const { replies, policy, sink, guard, events, session: s } = await session(
      `${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\nMAIL FROM:<${ALICE}>\r\nRCPT TO:<a@remote.test>\r\n` +
        'RCPT TO:<b@remote.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n',
    );
    assert.equal(replies[1], '235 2.7.0 Authentication successful');
    assert.deepEqual(codes(replies.slice(2)), ['250 2.1.0', '250 2.1.5', '250 2.1.5', '354', '250 2.0.0']);
    assert.deepEqual(guard.successes, [{ ip: '192.0.2.7', account: ALICE }]);
    assert.equal(policy.senders[0]?.info.authUser, ALICE);
    assert.deepEqual(policy.recipients.map((r) => r.accepted), [0, 1]);
    const arrival = sink.messages[0]?.envelope.arrival;
    assert.deepEqual([arrival?.authUser, arrival?.protocol], [ALICE, 'ESMTPSA']);
    assert.equal(policy.checkedMessages.length, 1);
    assert.equal(policy.acceptedMessages[0]?.info.authUser, ALICE);
    assert.equal(events[0]?.authUser, ALICE);
    assert.equal(s.stats.authUser, ALICE);
  });

  test('AUTH PLAIN without an initial response: an empty challenge, then the response', async () => {
    const { replies } = await session(`${EHLO}AUTH PLAIN\r\n${plain(ALICE, PASSWORD)}\r\n`);
    assert.deepEqual(replies.slice(1), ['334 ', '235 2.7.0 Authentication successful']);
  });

  test('AUTH LOGIN: Username:, Password:, 235', async () => {
    const { replies } = await session(`${EHLO}AUTH LOGIN\r\n${b64(ALICE)}\r\n${b64(PASSWORD)}\r\n`);
    assert.deepEqual(replies.slice(1), [`334 ${b64('Username:')}`, `334 ${b64('Password:')}`, '235 2.7.0 Authentication successful']);
  });

  test('SCRAM-SHA-256-PLUS bound to the TLS channel, through the session', async () => {
    const channelBinding = randomBytes(32);
    const h = harness({ ...submission(), tls: { ...TLS, channelBinding } });
    h.session.start();
    const client = new ScramClient({ hash: 'sha256', username: ALICE, password: PASSWORD, channelBinding });
    await feed(h, `${EHLO}AUTH ${client.mechanism} ${b64(client.clientFirst())}\r\n`);
    const serverFirst = lastChallenge(h);
    await feed(h, `${b64(client.clientFinal(serverFirst))}\r\n`);
    client.verifyServerFinal(lastChallenge(h));
    await feed(h, '\r\n');
    assert.equal(parseReplies(h.io.output).at(-1), '235 2.7.0 Authentication successful');
  });

  test('wrong password and unknown user: the same 535, each counted with account and mechanism', async () => {
    const wrong = await session(`${EHLO}AUTH PLAIN ${plain(ALICE, 'guess')}\r\n`);
    const unknown = await session(`${EHLO}AUTH LOGIN ${b64('nobody@example.test')}\r\n${b64(PASSWORD)}\r\n`);
    assert.equal(wrong.replies[1], '535 5.7.8 Authentication credentials invalid');
    assert.equal(unknown.replies.at(-1), wrong.replies[1]);
    assert.deepEqual(wrong.guard.failures, [{ ip: '192.0.2.7', account: ALICE, mechanism: 'PLAIN' }]);
    assert.deepEqual(unknown.guard.failures, [{ ip: '192.0.2.7', account: 'nobody@example.test', mechanism: 'LOGIN' }]);
    // Still not authenticated: MAIL needs AUTH.
    const h = wrong;
    await feed(h, `MAIL FROM:<${ALICE}>\r\n`);
    assert.equal(parseReplies(h.io.output).at(-1), '530 5.7.0 Authentication required');
  });

  test('the failure reply waits for the delay the guard asks for', async () => {
    const h = harness(submission());
    h.guard.delayMs = 20;
    h.session.start();
    h.session.receive(Buffer.from(`${EHLO}AUTH PLAIN ${plain(ALICE, 'guess')}\r\nNOOP\r\n`));
    for (let i = 0; i < 500 && h.session.busy; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(codes(parseReplies(h.io.output).slice(2)), ['535 5.7.8', '250 2.0.0']);
  });

  test('a locked account fails like a wrong password, even with the right one', async () => {
    const h = harness(submission());
    h.guard.lockedAccounts.add(ALICE);
    h.session.start();
    await feed(h, `${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.equal(parseReplies(h.io.output).at(-1), '535 5.7.8 Authentication credentials invalid');
    assert.equal(h.guard.failures.length, 1);
    assert.equal(h.guard.successes.length, 0);
    assert.equal(h.session.stats.authUser, undefined);
  });

  test('a locked-out IP gets the guard reply and no exchange', async () => {
    const h = harness(submission());
    h.guard.lockedIp = true;
    h.session.start();
    await feed(h, `${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.equal(parseReplies(h.io.output).at(-1), '454 4.7.0 Too many failed authentication attempts, try again later');
    assert.equal(h.session.stats.authUser, undefined);
  });

  test('"*" cancels; bad base64 and a malformed exchange are 501; none counts as a guess', async () => {
    const { replies, guard } = await session(
      `${EHLO}AUTH LOGIN\r\n*\r\nAUTH PLAIN\r\nnot base64!\r\nAUTH PLAIN ${b64('no nul here')}\r\nNOOP\r\n`,
    );
    assert.deepEqual(codes(replies.slice(1)), ['334', '501 5.0.0', '334', '501 5.5.2', '501 5.5.2', '250 2.0.0']);
    assert.equal(replies[2], '501 5.0.0 Authentication cancelled');
    assert.equal(guard.failures.length, 0);
  });

  test('sequence: AUTH twice, during a transaction, after HELO, unknown mechanism', async () => {
    const twice = await session(`${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\nAUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.deepEqual(codes(twice.replies.slice(1)), ['235 2.7.0', '503 5.5.1']);
    const mx = { config: { auth: 'after-tls' as const, mechanisms }, tls: TLS };
    const inTransaction = await converse(`${EHLO}MAIL FROM:<a@b.test>\r\nAUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`, mx);
    assert.deepEqual(codes(inTransaction.replies.slice(1)), ['250 2.1.0', '503 5.5.1']);
    const helo = await session(`HELO client\r\nAUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.deepEqual(codes(helo.replies.slice(1)), ['503 5.5.1']);
    const unknown = await session(`${EHLO}AUTH GSSAPI\r\nAUTH\r\n`);
    assert.deepEqual(codes(unknown.replies.slice(1)), ['504 5.5.4', '501 5.5.4']);
  });

  test('not offered on this listener (mx by default): 502, and not in EHLO', async () => {
    const { replies } = await converse(`${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`, { tls: TLS });
    assert.doesNotMatch(replies[0] ?? '', /AUTH/);
    assert.equal(replies[1], '502 5.5.1 AUTH is not offered here');
  });

  test('long lines: AUTH may be 12288 octets (RFC 4954 4), other commands keep their limit', async () => {
    const token = issuer.sign(issuer.claimsFor(ALICE, { pad: 'x'.repeat(3000) }));
    const xoauth2 = b64(`user=${ALICE}\x01auth=Bearer ${token}\x01\x01`);
    assert.ok(xoauth2.length > 4000);
    const ok = await session(`${EHLO}AUTH XOAUTH2 ${xoauth2}\r\nNOOP ${'x'.repeat(600)}\r\n`);
    assert.deepEqual(ok.replies.slice(1), ['235 2.7.0 Authentication successful', '500 5.5.2 Line too long']);
    const tooLong = await session(`${EHLO}AUTH PLAIN\r\n${'A'.repeat(13000)}\r\nNOOP\r\n`);
    assert.deepEqual(tooLong.replies.slice(1), ['334 ', '500 5.5.6 Authentication Exchange line is too long', '250 2.0.0 OK']);
  });

  test('a failure sent as a challenge (RFC 7628 3.2.2) ends with 535 after the client answers', async () => {
    const bad = issuer.sign(issuer.claimsFor(ALICE, { iss: 'https://elsewhere.test' }));
    const { replies, guard } = await session(`${EHLO}AUTH XOAUTH2 ${b64(`user=${ALICE}\x01auth=Bearer ${bad}\x01\x01`)}\r\n\r\n`);
    assert.match(replies[1] ?? '', /^334 \S+$/);
    assert.match(Buffer.from((replies[1] as string).slice(4), 'base64').toString(), /"status":"401"/);
    assert.equal(replies[2], '535 5.7.8 Authentication credentials invalid');
    assert.equal(guard.failures[0]?.mechanism, 'XOAUTH2');
  });

  test('AUTH pipelined after STARTTLS is dropped with the rest (CVE-2011-0411); AUTH works after the handshake', async () => {
    const h = harness({ config: submission().config });
    h.session.start();
    await feed(h, `${EHLO}STARTTLS\r\nAUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.deepEqual(codes(parseReplies(h.io.output).slice(1)), ['250', '220 2.0.0']);
    assert.equal(h.guard.successes.length, 0);
    assert.equal(h.session.stats.authUser, undefined);
    await feed(h, `${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.equal(parseReplies(h.io.output).at(-1), '235 2.7.0 Authentication successful');
  });

  test('a message the policy refuses after DATA (header From) is not stored or counted', async () => {
    const { replies, sink, policy } = await session(
      `${EHLO}AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\nMAIL FROM:<${ALICE}>\r\nRCPT TO:<a@remote.test>\r\nDATA\r\nFrom: FORGED\r\n\r\nx\r\n.\r\n`,
    );
    assert.equal(replies.at(-1), '553 5.7.1 Header From not owned');
    assert.equal(sink.messages.length, 0);
    assert.equal(policy.acceptedMessages.length, 0);
  });
});

function lastChallenge(h: Harness): string {
  const last = parseReplies(h.io.output).at(-1) ?? '';
  assert.match(last, /^334 /);
  return Buffer.from(last.slice(4), 'base64').toString();
}
