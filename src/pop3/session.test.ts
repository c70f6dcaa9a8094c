import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { SaslMechanism } from '../sasl/mechanism.js';
import { createMechanisms } from '../sasl/registry.js';
import { ScramClient } from '../sasl/scram-client.js';
import { MemoryCredentials } from '../../test/support/test-credentials.js';
import { cutAt } from '../../test/support/session-feed.js';
import {
  ALICE,
  ALICE_MESSAGES,
  GREETING,
  LOGIN,
  PASSWORD,
  TLS,
  converse,
  feed,
  harness,
  parseResponses,
  settle,
  statuses,
} from '../../test/support/test-pop3.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const size = (i: number): number => Buffer.byteLength(ALICE_MESSAGES[i] ?? '', 'latin1');
const TOTAL = ALICE_MESSAGES.reduce((sum, m) => sum + Buffer.byteLength(m, 'latin1'), 0);
const LOGGED_IN = `+OK Logged in, 3 messages (${TOTAL} octets)`;
const AUTH_FAILED = '-ERR [AUTH] Authentication failed';

let mechanisms: SaslMechanism[];

before(async () => {
  const credentials = await MemoryCredentials.withPasswords({ [ALICE]: PASSWORD });
  mechanisms = createMechanisms({ credentials, hostname: 'pop.example', enabled: ['SCRAM-SHA-256', 'PLAIN', 'LOGIN'] });
});

/** TLS up from the start (pop3s), with the real mechanisms. */
const pop3s = () => ({ tls: TLS, config: { mechanisms } });

describe('Pop3Session: greeting and CAPA', () => {
  test('the greeting names the host and carries no APOP timestamp', () => {
    const h = harness();
    h.session.start();
    assert.equal(h.io.output, GREETING);
  });

  test('before TLS: STLS, and neither USER nor SASL', async () => {
    const { responses } = await converse('CAPA\r\n', { config: { mechanisms } });
    assert.deepEqual(responses, [
      '+OK Capability list follows|TOP|UIDL|RESP-CODES|AUTH-RESP-CODE|PIPELINING|STLS|IMPLEMENTATION Postern',
    ]);
  });

  test('inside TLS: USER and the mechanisms for TLS, no STLS', async () => {
    const { responses } = await converse('CAPA\r\n', pop3s());
    assert.deepEqual(responses, [
      '+OK Capability list follows|TOP|UIDL|USER|SASL SCRAM-SHA-256 PLAIN LOGIN|RESP-CODES|AUTH-RESP-CODE|PIPELINING|IMPLEMENTATION Postern',
    ]);
  });

  test('no STLS where it is not configured; the same capabilities in TRANSACTION', async () => {
    const plain = await converse('CAPA\r\n', { config: { stls: false } });
    assert.doesNotMatch(plain.responses[0] ?? '', /STLS|USER/);
    const { responses } = await converse(`CAPA\r\n${LOGIN}CAPA\r\n`, pop3s());
    assert.equal(responses[3], responses[0]);
  });
});

describe('Pop3Session: AUTHORIZATION', () => {
  test('USER, PASS and AUTH before TLS are refused with [AUTH], pointing at STLS', async () => {
    const { responses, passwordChecks } = await converse(`${LOGIN}AUTH PLAIN ${b64(`\0${ALICE}\0${PASSWORD}`)}\r\n`);
    assert.deepEqual(responses, Array(3).fill('-ERR [AUTH] Must issue STLS first: no login without TLS'));
    assert.deepEqual(passwordChecks, []);
    const noStls = await converse('USER a\r\n', { config: { stls: false } });
    assert.deepEqual(noStls.responses, ['-ERR [AUTH] Login is only possible over TLS']);
  });

  test('USER/PASS inside TLS enters TRANSACTION', async () => {
    const { responses, session, guard, maildrops } = await converse(`${LOGIN}STAT\r\n`, { tls: TLS });
    assert.deepEqual(responses, ['+OK Send PASS', LOGGED_IN, `+OK 3 ${TOTAL}`]);
    assert.equal(session.stats.account, ALICE);
    assert.deepEqual(guard.successes, [{ ip: '192.0.2.7', account: ALICE }]);
    assert.ok(maildrops.isLocked(ALICE));
  });

  test('a wrong password and an unknown user get the same answer, after the guard`s delay', async () => {
    const wrong = await converse(`USER ${ALICE}\r\nPASS nope\r\n`, { tls: TLS });
    const h = harness({ tls: TLS });
    h.guard.delayMs = 1500;
    h.session.start();
    await feed(h, 'USER nobody@example.test\r\nPASS nope\r\n');
    const unknown = parseResponses(h.io.output).slice(1);
    assert.deepEqual(wrong.responses, ['+OK Send PASS', AUTH_FAILED]);
    assert.deepEqual(unknown, wrong.responses);
    assert.deepEqual(h.sleeps, [1500]);
    assert.deepEqual(wrong.sleeps, []);
    assert.deepEqual(h.guard.failures, [{ ip: '192.0.2.7', account: 'nobody@example.test', mechanism: 'USER' }]);
    assert.equal(h.session.stats.account, undefined);
  });

  test('the USER name is forgotten after a failed PASS; PASS needs USER first', async () => {
    const { responses } = await converse(`PASS x\r\nUSER ${ALICE}\r\nPASS wrong\r\nPASS ${PASSWORD}\r\n${LOGIN}`, { tls: TLS });
    assert.deepEqual(responses, ['-ERR Send USER first', '+OK Send PASS', AUTH_FAILED, '-ERR Send USER first', '+OK Send PASS', LOGGED_IN]);
  });

  test('a locked IP is told to come back later; a locked account fails like a wrong password', async () => {
    const h = harness({ tls: TLS });
    h.guard.lockedIp = true;
    h.session.start();
    await feed(h, LOGIN);
    assert.deepEqual(parseResponses(h.io.output).slice(1), ['+OK Send PASS', '-ERR [SYS/TEMP] Too many failed logins, try again later']);
    assert.deepEqual(h.passwordChecks, []);

    const a = harness({ tls: TLS });
    a.guard.lockedAccounts.add(ALICE);
    a.session.start();
    await feed(a, LOGIN);
    assert.deepEqual(parseResponses(a.io.output).slice(1), ['+OK Send PASS', AUTH_FAILED]);
    assert.deepEqual(a.guard.successes, []);
    assert.equal(a.guard.failures.length, 1);
    assert.equal(a.maildrops.opened.length, 0);
  });

  test('a maildrop held by another session: [IN-USE], and the session stays in AUTHORIZATION', async () => {
    const h = harness({ tls: TLS });
    h.maildrops.lock(ALICE);
    h.session.start();
    await feed(h, `${LOGIN}STAT\r\n`);
    h.maildrops.unlock(ALICE);
    await feed(h, `${LOGIN}STAT\r\n`);
    assert.deepEqual(parseResponses(h.io.output).slice(1), [
      '+OK Send PASS',
      '-ERR [IN-USE] Mailbox in use',
      '-ERR Not logged in',
      '+OK Send PASS',
      LOGGED_IN,
      `+OK 3 ${TOTAL}`,
    ]);
    assert.equal(h.session.stats.errors, 1, 'IN-USE is not the client`s error');
  });

  test('APOP is not offered; maildrop commands need a login; QUIT signs off', async () => {
    const { responses, io, session } = await converse('APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nSTAT\r\nRETR 1\r\nNOOP\r\nQUIT\r\nSTAT\r\n');
    assert.deepEqual(responses, [
      '-ERR APOP is not offered; use STLS, then USER/PASS or AUTH',
      '-ERR Not logged in',
      '-ERR Not logged in',
      '-ERR Not logged in',
      '+OK pop.example POP3 server signing off',
    ]);
    assert.ok(io.closed && session.closed);
  });

  test('checkPassword failing is [SYS/TEMP], logged, never internals', async () => {
    const { responses, errors } = await converse('USER explode\r\nPASS x\r\nNOOP\r\n', { tls: TLS });
    assert.deepEqual(responses, ['+OK Send PASS', '-ERR [SYS/TEMP] Internal error, try again later', '-ERR Not logged in']);
    assert.equal(errors.length, 1);
  });
});

describe('Pop3Session: AUTH (RFC 5034) with the real mechanisms', () => {
  const plain = (user: string, password: string) => b64(`\0${user}\0${password}`);

  test('PLAIN with an initial response', async () => {
    const { responses, guard } = await converse(`AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\nSTAT\r\n`, pop3s());
    assert.deepEqual(responses, [LOGGED_IN, `+OK 3 ${TOTAL}`]);
    assert.deepEqual(guard.successes, [{ ip: '192.0.2.7', account: ALICE }]);
  });

  test('PLAIN with the credentials after an empty "+ " challenge; lower-case mechanism name', async () => {
    const { responses } = await converse(`auth plain\r\n${plain(ALICE, PASSWORD)}\r\nSTAT\r\n`, pop3s());
    assert.deepEqual(responses, ['+ ', LOGGED_IN, `+OK 3 ${TOTAL}`]);
  });

  test('SCRAM-SHA-256: the client checks the server\'s proof, then +OK (RFC 5034 4: the last data as a challenge)', async () => {
    const h = harness(pop3s());
    h.session.start();
    const client = new ScramClient({ hash: 'sha256', username: ALICE, password: PASSWORD });
    const challenge = (): string => {
      const last = parseResponses(h.io.output).at(-1) ?? '';
      assert.match(last, /^\+ /);
      return Buffer.from(last.slice(2), 'base64').toString();
    };
    await feed(h, `AUTH ${client.mechanism} ${b64(client.clientFirst())}\r\n`);
    const serverFirst = challenge();
    await feed(h, `${b64(client.clientFinal(serverFirst))}\r\n`);
    client.verifyServerFinal(challenge());
    await feed(h, '\r\nSTAT\r\n');
    assert.deepEqual(parseResponses(h.io.output).slice(-2), [LOGGED_IN, `+OK 3 ${TOTAL}`]);
  });

  test('SCRAM-SHA-256 with the wrong password: the same [AUTH] answer as any other', async () => {
    const h = harness(pop3s());
    h.session.start();
    const client = new ScramClient({ hash: 'sha256', username: ALICE, password: 'guess' });
    await feed(h, `AUTH ${client.mechanism} ${b64(client.clientFirst())}\r\n`);
    const first = parseResponses(h.io.output).at(-1) ?? '';
    await feed(h, `${b64(client.clientFinal(Buffer.from(first.slice(2), 'base64').toString()))}\r\n`);
    assert.equal(parseResponses(h.io.output).at(-1), AUTH_FAILED);
    assert.deepEqual(h.guard.failures.map((f) => f.mechanism), ['SCRAM-SHA-256']);
  });

  test('LOGIN: user name and password challenges', async () => {
    const { responses } = await converse(`AUTH LOGIN\r\n${b64(ALICE)}\r\n${b64(PASSWORD)}\r\n`, pop3s());
    assert.deepEqual(responses, [`+ ${b64('Username:')}`, `+ ${b64('Password:')}`, LOGGED_IN]);
  });

  test('a wrong password: [AUTH], counted by the guard, after its delay', async () => {
    const h = harness(pop3s());
    h.guard.delayMs = 2000;
    h.session.start();
    await feed(h, `AUTH PLAIN ${plain(ALICE, 'wrong')}\r\nAUTH PLAIN ${plain('nobody@example.test', 'wrong')}\r\nSTAT\r\n`);
    assert.deepEqual(parseResponses(h.io.output).slice(1), [AUTH_FAILED, AUTH_FAILED, '-ERR Not logged in']);
    assert.deepEqual(h.sleeps, [2000, 2000]);
    assert.deepEqual(
      h.guard.failures.map((f) => [f.account, f.mechanism]),
      [
        [ALICE, 'PLAIN'],
        ['nobody@example.test', 'PLAIN'],
      ],
    );
  });

  test('"*" cancels, "=" is an empty initial response, junk base64 is refused', async () => {
    const { responses, guard } = await converse('AUTH PLAIN\r\n*\r\nAUTH PLAIN =\r\nAUTH PLAIN not*base64\r\nAUTH LOGIN\r\n%%%\r\n', pop3s());
    assert.deepEqual(responses, [
      '+ ',
      '-ERR Authentication cancelled',
      '-ERR Malformed authentication response',
      '-ERR Cannot decode the response as base64',
      `+ ${b64('Username:')}`,
      '-ERR Cannot decode the response as base64',
    ]);
    assert.deepEqual(guard.failures, [], 'malformed exchanges test no credentials');
  });

  test('unknown mechanisms, AUTH without a mechanism lists them, AUTH after login', async () => {
    const { responses } = await converse(`AUTH CRAM-MD5\r\nAUTH\r\nAUTH PLAIN ${plain(ALICE, PASSWORD)}\r\nAUTH PLAIN =\r\n`, pop3s());
    assert.deepEqual(responses, [
      '-ERR Unrecognized authentication mechanism',
      '+OK Mechanisms follow|SCRAM-SHA-256|PLAIN|LOGIN',
      LOGGED_IN,
      '-ERR Already logged in',
    ]);
  });

  test('a locked IP cannot start an exchange', async () => {
    const h = harness(pop3s());
    h.guard.lockedIp = true;
    h.session.start();
    await feed(h, `AUTH PLAIN ${plain(ALICE, PASSWORD)}\r\n`);
    assert.deepEqual(parseResponses(h.io.output).slice(1), ['-ERR [SYS/TEMP] Too many failed logins, try again later']);
  });

  test('a bad SASL response line ends the exchange, and commands are read again', async () => {
    const { responses } = await converse('AUTH PLAIN\r\nab\ncd\r\nNOOP\r\n', pop3s());
    assert.deepEqual(responses, ['+ ', '-ERR Malformed authentication response', '-ERR Not logged in']);
  });
});

describe('Pop3Session: TRANSACTION', () => {
  const session = (commands: string) => converse(`${LOGIN}${commands}`, { tls: TLS });
  const after = (responses: string[]) => responses.slice(2);

  test('STAT, LIST and UIDL, all and single', async () => {
    const { responses } = await session('LIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\n');
    assert.deepEqual(after(responses), [
      `+OK 3 messages (${TOTAL} octets)|1 ${size(0)}|2 ${size(1)}|3 ${size(2)}`,
      `+OK 2 ${size(1)}`,
      `+OK Unique-ID listing follows|1 uid-${ALICE}-1|2 uid-${ALICE}-2|3 uid-${ALICE}-3`,
      `+OK 3 uid-${ALICE}-3`,
    ]);
  });

  test('RETR sends the message byte-stuffed, ended by CRLF.CRLF', async () => {
    const { output, session: s } = await session('RETR 1\r\nNOOP\r\n');
    const message = ALICE_MESSAGES[0] ?? '';
    const stuffed = message.replace(/(^|\r\n)\./g, '$1..');
    assert.ok(output.endsWith(`+OK ${size(0)} octets\r\n${stuffed}.\r\n+OK\r\n`), JSON.stringify(output));
    assert.equal(s.stats.retrieved, 1);
  });

  test('TOP: the header section, the empty line, and n body lines', async () => {
    const { responses } = await session('TOP 3 0\r\nTOP 3 2\r\nTOP 3 100\r\nTOP 9 1\r\n');
    assert.deepEqual(after(responses), [
      '+OK Top of message follows|Subject: long|X-Two: lines|',
      '+OK Top of message follows|Subject: long|X-Two: lines||line 1|line 2',
      '+OK Top of message follows|Subject: long|X-Two: lines||line 1|line 2|line 3|line 4',
      '-ERR No such message',
    ]);
  });

  test('numbers out of range or not numbers are -ERR', async () => {
    const { responses } = await session('RETR 0\r\nRETR 4\r\nLIST 999999999\r\nDELE x\r\nUIDL 0\r\nTOP 1\r\nRETR\r\nSTAT\r\n');
    assert.deepEqual(statuses(after(responses)), [...Array(7).fill('-ERR'), '+OK']);
    assert.equal(after(responses)[3], '-ERR Syntax: DELE message');
  });

  test('deleted messages are hidden and refused; RSET brings them back', async () => {
    const { responses } = await session(
      'DELE 2\r\nDELE 2\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 2\r\nRETR 2\r\nTOP 2 0\r\nRSET\r\nLIST 2\r\nSTAT\r\n',
    );
    assert.deepEqual(after(responses), [
      '+OK Message 2 deleted',
      '-ERR Message 2 already deleted',
      `+OK 2 ${size(0) + size(2)}`,
      `+OK 2 messages (${size(0) + size(2)} octets)|1 ${size(0)}|3 ${size(2)}`,
      '-ERR No such message',
      `+OK Unique-ID listing follows|1 uid-${ALICE}-1|3 uid-${ALICE}-3`,
      '-ERR No such message',
      '-ERR Message 2 is deleted',
      '-ERR Message 2 is deleted',
      `+OK Maildrop has 3 messages (${TOTAL} octets)`,
      `+OK 2 ${size(1)}`,
      `+OK 3 ${TOTAL}`,
    ]);
  });

  test('deletions happen only at QUIT, in UPDATE', async () => {
    const h = harness({ tls: TLS });
    h.session.start();
    await feed(h, `${LOGIN}DELE 3\r\nDELE 1\r\n`);
    assert.equal(h.maildrops.last.committed, undefined);
    assert.equal(h.maildrops.contents(ALICE).length, 3);
    await feed(h, 'QUIT\r\n');
    assert.deepEqual(h.maildrops.last.committed, [0, 2]);
    assert.deepEqual(h.maildrops.contents(ALICE), [ALICE_MESSAGES[1]]);
    assert.equal(parseResponses(h.io.output).at(-1), '+OK pop.example POP3 server signing off (1 messages left)');
    assert.ok(h.io.closed);
    assert.equal(h.maildrops.isLocked(ALICE), false);
    assert.deepEqual(h.session.stats, { account: ALICE, retrieved: 0, deleted: 2, commands: 5, errors: 0 });
  });

  test('a dropped connection, a timeout or a shutdown releases the maildrop and deletes nothing', async () => {
    for (const end of ['disconnected', 'timeout', 'shutdown'] as const) {
      const h = harness({ tls: TLS });
      h.session.start();
      await feed(h, `${LOGIN}DELE 1\r\nDELE 2\r\n`);
      h.session[end]();
      await settle(h.session);
      assert.equal(h.maildrops.last.committed, undefined, end);
      assert.equal(h.maildrops.last.released, 1, end);
      assert.equal(h.maildrops.contents(ALICE).length, 3, end);
      assert.ok(h.session.closed, end);
      const last = parseResponses(h.io.output).at(-1);
      if (end === 'shutdown') assert.equal(last, '-ERR [SYS/TEMP] Server shutting down, try again later');
      if (end === 'timeout') assert.equal(last, '-ERR Autologout: idle for too long, closing connection');
      if (end === 'disconnected') assert.equal(last, '+OK Message 2 deleted');
    }
  });

  test('a connection that drops while the maildrop is being opened still releases it', async () => {
    const h = harness({ tls: TLS });
    let open!: () => void;
    h.maildrops.gate = new Promise((resolve) => (open = resolve));
    h.session.start();
    h.session.receive(Buffer.from(LOGIN));
    await new Promise((resolve) => setImmediate(resolve));
    h.session.disconnected();
    open();
    await settle(h.session);
    assert.equal(h.maildrops.last.released, 1);
    assert.equal(h.maildrops.isLocked(ALICE), false);
  });

  test('shutdown during a command finishes it first', async () => {
    const h = harness({ tls: TLS });
    h.session.start();
    await feed(h, LOGIN);
    h.session.receive(Buffer.from('RETR 2\r\nSTAT\r\n'));
    h.session.shutdown();
    await settle(h.session);
    const responses = parseResponses(h.io.output).slice(3);
    assert.deepEqual(statuses(responses), ['+OK', '-ERR [SYS/TEMP]']);
    assert.equal(h.maildrops.last.released, 1);
  });

  test('a failed commit is [SYS/TEMP] and releases the lock; a failed read is [SYS/TEMP] and the session goes on', async () => {
    const h = harness({ tls: TLS });
    h.session.start();
    await feed(h, `${LOGIN}DELE 1\r\n`);
    h.maildrops.last.failRead = true;
    await feed(h, 'RETR 2\r\nNOOP\r\n');
    h.maildrops.last.failCommit = true;
    await feed(h, 'QUIT\r\n');
    assert.deepEqual(parseResponses(h.io.output).slice(4), [
      '-ERR [SYS/TEMP] Internal error, try again later',
      '+OK',
      '-ERR [SYS/TEMP] Some deleted messages were not removed',
    ]);
    assert.equal(h.maildrops.last.released, 1);
    assert.ok(h.io.closed);
    assert.equal(h.errors.length, 2);
  });

  test('commands of AUTHORIZATION are refused after login; unknown commands', async () => {
    const { responses } = await session('USER x\r\nPASS y\r\nSTLS\r\nAPOP a b\r\nXTND\r\n');
    assert.deepEqual(after(responses), [
      '-ERR Already logged in',
      '-ERR Already logged in',
      '-ERR STLS is only allowed before login',
      '-ERR Already logged in',
      '-ERR Unknown command',
    ]);
  });
});

describe('Pop3Session: STLS (RFC 2595)', () => {
  test('input pipelined after STLS is discarded; login works inside TLS', async () => {
    const h = harness({ config: { mechanisms } });
    h.session.start();
    await feed(h, `STLS\r\n${LOGIN}STAT\r\n`);
    assert.equal(h.io.tlsStarts, 1);
    assert.deepEqual(h.passwordChecks, [], 'the pipelined PASS was not acted on');
    await feed(h, `CAPA\r\nSTLS\r\n${LOGIN}`);
    assert.deepEqual(parseResponses(h.io.output).slice(1), [
      '+OK Begin TLS negotiation',
      '+OK Capability list follows|TOP|UIDL|USER|SASL SCRAM-SHA-256 PLAIN LOGIN|RESP-CODES|AUTH-RESP-CODE|PIPELINING|IMPLEMENTATION Postern',
      '-ERR Command not permitted when TLS active',
      '+OK Send PASS',
      LOGGED_IN,
    ]);
  });

  test('a partial line before STLS is forgotten too', async () => {
    const h = harness();
    h.session.start();
    await feed(h, 'STLS\r\nUSER ev');
    await feed(h, 'il\r\nNOOP\r\n');
    assert.deepEqual(parseResponses(h.io.output).slice(1), ['+OK Begin TLS negotiation', '-ERR Unknown command', '-ERR Not logged in']);
  });

  test('STLS where it is not offered; a failed handshake closes', async () => {
    const off = await converse('STLS\r\n', { config: { stls: false } });
    assert.deepEqual(off.responses, ['-ERR STLS is not offered']);
    const h = harness();
    h.io.failTls = true;
    h.session.start();
    await feed(h, 'STLS\r\n');
    assert.ok(h.io.closed && h.session.closed);
  });
});

describe('Pop3Session: limits and bad lines', () => {
  test('an overlong command is -ERR, read to its end, and the next command is answered', async () => {
    const { responses } = await converse(`NOOP ${'x'.repeat(300)}\r\nUSER ${'y'.repeat(20000)}\r\nCAPA\r\n`);
    assert.deepEqual(statuses(responses), ['-ERR', '-ERR', '+OK']);
    assert.equal(responses[0], '-ERR Command line too long');
    assert.equal(responses[1], '-ERR Command line too long');
  });

  test('bare LF, bare CR and NUL make the whole line an error', async () => {
    const { responses } = await converse('QUIT\nCAPA\r\nQUIT\rX\r\nNO\0OP\r\n\xff\r\nCAPA\r\n');
    assert.deepEqual(responses.map((r) => r.split('|')[0]), [
      '-ERR Bare CR or LF in command; lines must end with CRLF',
      '-ERR Bare CR or LF in command; lines must end with CRLF',
      '-ERR NUL character in command',
      '-ERR Command is not valid UTF-8',
      '+OK Capability list follows',
    ]);
  });

  test('too many errors close the session, with one response per command', async () => {
    const { responses, io, session } = await converse('FOO\r\nBAR\r\nBAZ\r\nCAPA\r\n', { limits: { maxErrors: 3 } });
    assert.deepEqual(responses, ['-ERR Unknown command', '-ERR Unknown command', '-ERR Unknown command; too many errors, closing connection']);
    assert.ok(io.closed);
    assert.equal(session.stats.errors, 3);
  });

  test('too many commands close the session', async () => {
    const h = harness({ tls: TLS, limits: { maxCommands: 4 } });
    h.session.start();
    await feed(h, `${LOGIN}NOOP\r\nNOOP\r\nNOOP\r\n`);
    assert.deepEqual(parseResponses(h.io.output).slice(1), ['+OK Send PASS', LOGGED_IN, '+OK', '+OK', '-ERR Too many commands, closing connection']);
    assert.equal(h.maildrops.last.released, 1);
  });
});

describe('Pop3Session: pipelining (RFC 2449 6.6)', () => {
  const DIALOGUE =
    `CAPA\r\n${LOGIN}STAT\r\nLIST\r\nBOGUS\r\nUIDL 1\r\nRETR 1\r\nRETR 7\r\nTOP 3 1\r\nDELE 1\r\nLIST 1\r\n` +
    `NOOP\r\nRSET\r\nDELE 2\r\nQUIT\r\n`;

  test('a batch with a bad command in the middle: one response each, in order', async () => {
    const { responses, maildrops } = await converse(DIALOGUE, { tls: TLS });
    assert.deepEqual(statuses(responses), [
      '+OK', '+OK', '+OK', '+OK', '+OK', '-ERR', '+OK', '+OK', '-ERR', '+OK', '+OK', '-ERR', '+OK', '+OK', '+OK', '+OK',
    ]);
    assert.deepEqual(maildrops.last.committed, [1]);
  });

  test('the same dialogue in one chunk and in 1-, 3- and 17-byte fragments gives the same output', async () => {
    const outputs: string[] = [];
    for (const fragment of [Infinity, 1, 3, 17]) outputs.push((await converse(DIALOGUE, { tls: TLS }, fragment)).output);
    assert.equal(new Set(outputs).size, 1);
    assert.equal(parseResponses(outputs[0] ?? '').length, 16);
  });

  test('a flood of pipelined input pauses reading instead of growing the buffer, and resumes', async () => {
    const h = harness({ tls: TLS, limits: { maxCommands: 1_000_000 } });
    h.session.start();
    await feed(h, LOGIN);
    // Over 1 MiB of NOOPs in one go: the session works through them a line at a time.
    const flood = Buffer.from('NOOP\r\n'.repeat(200_000));
    h.session.receive(flood);
    assert.ok(h.io.pauses >= 1, 'reading paused');
    await settle(h.session);
    assert.equal(h.io.resumes, h.io.pauses, 'and resumed once the backlog was worked through');
    assert.equal(h.io.closed, false);
    assert.equal(parseResponses(h.io.output).length, 3 + 200_000);
  });

  test('input sent before the greeting waits for it', async () => {
    const h = harness();
    h.session.receive(Buffer.from('CAPA\r\n'));
    h.session.start();
    await settle(h.session);
    assert.equal(statuses(parseResponses(h.io.output)).join(' '), '+OK +OK');
  });
});

// ---- properties -----------------------------------------------------------------------------


const token = fc.constantFrom(
  LOGIN,
  `USER ${ALICE}\r\n`,
  'PASS wrong\r\n',
  'CAPA\r\n',
  'STAT\r\n',
  'LIST\r\n',
  'LIST 2\r\n',
  'UIDL\r\n',
  'UIDL 9\r\n',
  'RETR 1\r\n',
  'RETR 0\r\n',
  'TOP 1 1\r\n',
  'TOP 3 x\r\n',
  'DELE 1\r\n',
  'RSET\r\n',
  'NOOP\r\n',
  'AUTH PLAIN\r\n',
  'AUTH LOGIN\r\n',
  '*\r\n',
  'APOP a b\r\n',
  'STLS\r\n',
  '\r\n',
  '\r',
  '\n',
  '.',
  '\0',
  '\xff\xfe',
  'é',
  'x'.repeat(300),
  ' ',
);

describe('Pop3Session: properties', () => {
  test('arbitrary bytes in arbitrary pieces: no throw, no hang, only well-formed responses', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(fc.oneof(token, fc.string({ maxLength: 8 })), { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        async (tls, tokens, cuts) => {
          const h = harness({ limits: { maxErrors: 1000 }, ...(tls ? { tls: TLS } : {}) });
          h.session.start();
          for (const piece of cutAt(Buffer.from(tokens.join(''), 'latin1'), cuts)) h.session.receive(piece);
          await settle(h.session);
          h.session.disconnected();
          assert.ok(parseResponses(h.io.output)[0]?.startsWith('+OK pop.example'));
          for (const drop of h.maildrops.opened) assert.equal(drop.released + (drop.committed ? 1 : 0), 1, 'the lock ends once');
        },
      ),
      { seed: 5034, numRuns: 300 },
    );
  });

  test('the same bytes in one chunk and in 1-, 3- and 17-byte pieces give the same output', async () => {
    const dialogueToken = token.filter((t) => t !== 'STLS\r\n');
    await fc.assert(
      fc.asyncProperty(fc.array(dialogueToken, { maxLength: 30 }), async (tokens) => {
        const outputs: string[] = [];
        for (const fragment of [Infinity, 1, 3, 17]) {
          outputs.push((await converse(Buffer.from(tokens.join(''), 'latin1'), { tls: TLS, limits: { maxErrors: 1000 } }, fragment)).output);
        }
        assert.equal(new Set(outputs).size, 1, outputs.join('\n----\n'));
      }),
      { seed: 2449, numRuns: 150 },
    );
  });
});
