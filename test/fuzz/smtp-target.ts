// Fuzz target: the SMTP session (src/smtp/session.ts) on each kind of listener, fed dialogues of
// structured hostile input (commands with mutated arguments, DATA and BDAT bodies, AUTH exchanges
// with every mechanism, STARTTLS with pipelined commands, huge lines, bare CR/LF, NULs, non-UTF-8)
// chopped at random chunk boundaries, sometimes waiting for the replies and sometimes pipelining.
// The socket side respects backpressure as a real one does: nothing is sent while paused.
//
// Properties: nothing throws out of the machine and nothing unexpected is logged; every reply is
// well-formed (code, enhanced code where the session uses them, printable ASCII, CRLF, at most
// 512 octets a line, RFC 5321 4.5.3.1.5); nothing is written after the close, and nothing after
// 221 or 421; limits hold (max_errors, recipients, message size, AUTH before MAIL on submission,
// AUTH only inside TLS); every stored message has CRLF line ends only; the session always returns
// to waiting for input (no hang) and a timeout closes it.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Logger } from 'pino';
import type { ListenerKind } from '../../src/mail/envelope.js';
import type { TlsInfo } from '../../src/mail/tls-info.js';
import type { SessionConfig, SessionIo } from '../../src/smtp/session-host.js';
import { blamesClient, SmtpSession } from '../../src/smtp/session.js';
import { cutAt, settle } from '../support/session-feed.js';
import { FakeGuard, FakePolicy, FakeSink } from '../support/test-session.js';
import { ACCOUNTS, HOSTNAME, MECHANISM_NAMES, TLS13, type FuzzWorld, type MechanismName } from './fuzz-world.js';
import { cuts, hostileBytes, hostileNumber, hostileText, mutated } from './hostile.js';
import { messagesFor, validLogin } from './sasl-messages.js';
import type { FuzzTarget } from './target.js';

const TLS12: TlsInfo = { version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384' };
/** Errors the fakes of test-session.ts raise on purpose: a sender "error@...", a body with FAIL-HARD. */
const EXPECTED_FAULTS = ['database is down', 'disk on fire'];

type Transport = 'mx' | 'submission' | 'submissions-tls13' | 'submissions-tls12';

/** One thing the client does: bytes, how the socket cuts them, and whether it then waits for replies. */
export interface Step {
  readonly bytes: Buffer;
  readonly cuts: readonly number[];
  readonly wait: boolean;
}

export interface SmtpInput {
  readonly transport: Transport;
  readonly bareNewline: 'reject' | 'normalize';
  readonly limits: SessionConfig['limits'];
  readonly failTls: boolean;
  readonly steps: readonly Step[];
  /** shutdown() after this many steps (SIGTERM while the client talks). */
  readonly shutdownAt: number | undefined;
}

// ---- the client's side --------------------------------------------------------------------------

const line = (text: string) => Buffer.from(text);
const crlf = fc.oneof({ weight: 20, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '', '\r\r\n', '\n\r') });

const local = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('alice', 'bob', 'unknown', 'alias', 'custom', 'blocked', 'postmaster', 'Postmaster', 'a+tag', 'a.b') },
  { weight: 2, arbitrary: fc.constantFrom('"quoted local"', '"a\\"b"', '"a@b"', 'ü', '.a', 'a..b', '', 'x'.repeat(65), '"\\\0"') },
  { weight: 1, arbitrary: fc.constantFrom('error') },
  { weight: 2, arbitrary: hostileText },
);
const domain = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('example.test', 'example.com', 'elsewhere.example') },
  {
    weight: 3,
    arbitrary: fc.constantFrom('[192.0.2.1]', '[IPv6:2001:db8::1]', '[IPv6:::1]', '[300.1.1.1]', '[tag:x]', 'bücher.example', 'xn--bcher-kva.example', 'xn--zz', 'localhost', '-bad.example', `${'x'.repeat(64)}.example`, 'a.b.', ''),
  },
  { weight: 2, arbitrary: hostileText },
);
const path = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(local, domain).map(([l, d]) => `<${l}@${d}>`) },
  { weight: 1, arbitrary: fc.constantFrom('<>', '<postmaster>', '<Postmaster>', '', '<', '>', '<<a@b>>', '<a@b> <c@d>') },
  { weight: 1, arbitrary: fc.tuple(local, domain).map(([l, d]) => `${l}@${d}`) },
  { weight: 1, arbitrary: fc.tuple(local, domain).map(([l, d]) => `<@relay.example,@[192.0.2.9]:${l}@${d}>`) },
  { weight: 1, arbitrary: fc.tuple(local, domain).map(([l, d]) => `<${l}@${d}`) },
);
const param = fc.oneof(
  hostileNumber.map((n) => `SIZE=${n}`),
  fc.constantFrom('BODY=8BITMIME', 'BODY=7BIT', 'BODY=BINARYMIME', 'BODY=junk', 'SMTPUTF8', 'SMTPUTF8=yes', 'RET=FULL', 'RET=HDRS', 'RET=x'),
  fc.constantFrom('ENVID=a+2Bb', 'ENVID=+ZZ', `ENVID=${'x'.repeat(120)}`, 'ENVID=', 'NOTIFY=SUCCESS,FAILURE', 'NOTIFY=NEVER', 'NOTIFY=NEVER,SUCCESS', 'NOTIFY='),
  fc.constantFrom('ORCPT=rfc822;a@b', 'ORCPT=rfc822;a+2Bb@c', 'ORCPT=utf-8;x', 'ORCPT=bogus', 'AUTH=<>', 'AUTH=a+40b', 'X-UNKNOWN=1', '=', 'SIZE', 'size=1'),
  hostileText.map((t) => `${t}=${t}`),
);
const params = fc.array(param, { maxLength: 3 }).map((ps) => ps.map((p) => ` ${p}`).join(''));

const mailLine = fc
  .tuple(fc.constantFrom('MAIL FROM:', 'mail from:', 'MAIL FROM: ', 'MAIL  FROM:', 'MAIL TO:', 'MAIL FROM'), path, params)
  .map(([v, p, ps]) => v + p + ps);
const rcptLine = fc.tuple(fc.constantFrom('RCPT TO:', 'rcpt to:', 'RCPT TO: ', 'RCPT FROM:', 'RCPT TO'), path, params).map(([v, p, ps]) => v + p + ps);
const heloLine = fc
  .tuple(fc.constantFrom('EHLO', 'HELO', 'ehlo', 'Helo', 'EHLO '), fc.oneof(domain, fc.constantFrom('client.example', '[192.0.2.1]', '')))
  .map(([v, d]) => (d === '' ? v : `${v} ${d}`));
const simpleLine = fc.oneof(
  fc.constantFrom('RSET', 'NOOP', 'QUIT', 'HELP', 'EXPN staff', 'VRFY bob', 'DATA', 'STARTTLS', 'rset', 'DATA x', 'QUIT now', 'STARTTLS x', 'VRFY', 'AUTH', 'BDAT', 'BDAT LAST', ''),
  fc.tuple(fc.constantFrom('NOOP', 'HELP', 'VRFY', 'EXPN', 'XCLIENT', 'TURN', 'ETRN', 'X', ' NOOP', 'NOOP\t'), hostileText).map(([v, t]) => `${v} ${t}`),
);

/** A command line, its line end, sometimes mutated after assembly. */
const commandLine = mutated(
  fc.tuple(fc.oneof({ weight: 2, arbitrary: heloLine }, { weight: 3, arbitrary: mailLine }, { weight: 3, arbitrary: rcptLine }, { weight: 2, arbitrary: simpleLine }), crlf).map(([l, e]) => line(l + e)),
  6,
);

const bodyLine = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('Subject: hi', 'From: a@b', '', 'text', '.', '..', '.x', '. ', 'QUIT', 'RSET', 'MAIL FROM:<a@b>', 'é') },
  { weight: 1, arbitrary: fc.constantFrom('FORGED', 'FAIL-SMTP', 'FAIL-HARD', '\0', '\xff'.repeat(3)) },
  { weight: 1, arbitrary: fc.constantFrom(997, 998, 999, 1200).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: hostileText },
);
const bodyEnd = fc.oneof({ weight: 8, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\r\r\n') });
const body = fc.array(fc.tuple(bodyLine, bodyEnd), { maxLength: 12 }).map((ls) => ls.map(([l, e]) => l + e).join(''));
/** The end of the data: the right one, SMTP smuggling's ones (2023), or none. */
const dataEnd = fc.oneof({ weight: 10, arbitrary: fc.constant('.\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n.\n', '\r\n.\n', '.\n', '\r.\r', '', '\r\n.\r\n') });

const dataStep = fc
  .tuple(fc.constantFrom('DATA\r\n', 'DATA\r\n', 'data\r\n'), fc.oneof({ weight: 20, arbitrary: body }, { weight: 1, arbitrary: fc.constantFrom(20_000, 120_000).map((n) => `${'y'.repeat(n)}\r\n`) }), dataEnd)
  .map(([d, b, e]) => Buffer.from(d + b + e, 'latin1'));

const bdatStep = fc
  .tuple(fc.oneof(body.map((b) => Buffer.from(b, 'latin1')), hostileBytes), fc.constantFrom('exact', 'exact', 'exact', 'more', 'less', 'zero', 'huge'), fc.boolean(), fc.constantFrom('', ' LAST', ' last', ' LAST x'))
  .map(([payload, sizing, last, flag]) => {
    const size = { exact: payload.length, more: payload.length + 3, less: Math.max(0, payload.length - 2), zero: 0, huge: 99_999 }[sizing];
    return Buffer.concat([line(`BDAT ${size}${last ? ' LAST' : flag}\r\n`), payload]);
  });

const base64 = (b: Buffer) => b.toString('base64');

/** AUTH as a correct client does it, with one of `names`. */
export function validAuthStep(world: FuzzWorld, names: readonly MechanismName[]): fc.Arbitrary<Buffer> {
  return fc
    .constantFrom(...names)
    .chain((n) => fc.tuple(fc.constant(n), validLogin(n, world.credentials, world.tokens), fc.boolean()))
    .map(([n, messages, initial]) => {
      const lines = messages.map(base64);
      const first = initial ? `AUTH ${n} ${lines.shift() || '='}` : `AUTH ${n}`;
      return Buffer.from([first, ...lines].map((l) => `${l}\r\n`).join(''));
    });
}

/** AUTH with a mechanism, its initial response or none, then the responses (RFC 4954 4). */
function authStep(world: FuzzWorld, names: readonly MechanismName[]): fc.Arbitrary<Buffer> {
  const name = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...names) }, { weight: 1, arbitrary: fc.constantFrom('plain', 'FOO', 'PLAIN EXTRA WORDS', 'SCRAM-SHA-512', '') });
  const encoded = (m: Buffer) =>
    fc.oneof({ weight: 12, arbitrary: fc.constant(base64(m)) }, { weight: 1, arbitrary: fc.constantFrom('*', '=', '', 'not base64!', 'AAA', `${'QUFB'.repeat(3100)}`) });
  return name.chain((n) => {
    const known = (MECHANISM_NAMES as readonly string[]).includes(n.toUpperCase()) ? (n.toUpperCase() as MechanismName) : 'PLAIN';
    return fc
      .tuple(messagesFor(known, world.credentials, world.tokens), fc.boolean())
      .chain(([messages, initial]) => fc.tuple(...messages.map(encoded), fc.constant(initial)))
      .map((parts) => {
        const initial = parts.pop() as boolean;
        const lines = parts as string[];
        const first = initial && lines.length > 0 ? `AUTH ${n} ${lines.shift() || '='}` : `AUTH ${n}`;
        return Buffer.from([first, ...lines].map((l) => `${l}\r\n`).join(''));
      });
  });
}

const hugeLine = fc
  .tuple(fc.constantFrom('', 'MAIL FROM:<', 'RCPT TO:<', 'AUTH PLAIN ', 'EHLO '), fc.constantFrom(509, 510, 511, 1000, 12287, 12289, 40_000), fc.constantFrom('\r\n', ''))
  .map(([prefix, n, end]) => Buffer.from(prefix + 'a'.repeat(n) + end));

function anyStep(world: FuzzWorld): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 10, arbitrary: commandLine },
    { weight: 3, arbitrary: dataStep },
    { weight: 2, arbitrary: bdatStep },
    { weight: 3, arbitrary: authStep(world, MECHANISM_NAMES) },
    { weight: 1, arbitrary: fc.constantFrom(line('STARTTLS\r\n'), line('STARTTLS\r\nEHLO injected\r\nMAIL FROM:<a@b>\r\n')) },
    { weight: 1, arbitrary: hostileBytes },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) },
    { weight: 1, arbitrary: hugeLine },
  );
}

/** A client that mostly follows the protocol, so the deep states are reached, but strays. */
function scenario(world: FuzzWorld, transport: Transport): fc.Arbitrary<Buffer[]> {
  const ehlo = fc.constant(line('EHLO client.example\r\n'));
  const mail = fc.oneof({ weight: 3, arbitrary: fc.constant(line('MAIL FROM:<alice@example.test>\r\n')) }, { weight: 1, arbitrary: commandLine });
  const rcpt = fc.oneof({ weight: 3, arbitrary: fc.constant(line('RCPT TO:<bob@example.com>\r\n')) }, { weight: 1, arbitrary: commandLine });
  const message = fc.oneof(dataStep, bdatStep);
  const binding = transport !== 'submissions-tls12';
  const names = MECHANISM_NAMES.filter((n) => binding || !n.endsWith('-PLUS'));
  const login = fc.oneof({ weight: 3, arbitrary: validAuthStep(world, names) }, { weight: 2, arbitrary: authStep(world, names) });
  const skeleton: fc.Arbitrary<Buffer>[] =
    transport === 'mx'
      ? [ehlo, mail, rcpt, rcpt, message, message]
      : transport === 'submission'
        ? [ehlo, fc.constant(line('STARTTLS\r\n')), ehlo, login, mail, rcpt, message]
        : [ehlo, login, mail, rcpt, message, message];
  const random = anyStep(world);
  const gap = fc.oneof({ weight: 6, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(random, { maxLength: 2 }) });
  const slot = (s: fc.Arbitrary<Buffer>) =>
    fc
      .tuple(fc.oneof({ weight: 10, arbitrary: s.map((b) => [b]) }, { weight: 1, arbitrary: random.map((b) => [b]) }, { weight: 1, arbitrary: fc.constant([]) }), gap)
      .map(([main, g]) => [...main, ...g]);
  return fc.tuple(...skeleton.map(slot), gap).map((parts) => parts.flat());
}

export function smtpTarget(world: FuzzWorld): FuzzTarget<SmtpInput> {
  const limits = fc.record({
    maxMessageSize: fc.constantFrom(2_000, 10_000, 100_000),
    maxRecipients: fc.constantFrom(1, 3, 100),
    maxCommandLine: fc.constantFrom(512, 1000),
    maxTextLine: fc.constant(1000),
    maxErrors: fc.constantFrom(3, 10, 1000),
    maxMessagesPerConnection: fc.constantFrom(0, 0, 1, 3),
  });
  const input = fc.constantFrom<Transport>('mx', 'submission', 'submissions-tls13', 'submissions-tls12').chain((transport) =>
    fc.record({
      transport: fc.constant(transport),
      bareNewline: fc.constantFrom('reject', 'normalize'),
      limits,
      failTls: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      steps: fc
        .oneof({ weight: 3, arbitrary: scenario(world, transport) }, { weight: 1, arbitrary: fc.array(anyStep(world), { maxLength: 12 }) })
        .chain((bs) => fc.tuple(...bs.map((bytes) => fc.record({ bytes: fc.constant(bytes), cuts, wait: fc.boolean() })))),
      shutdownAt: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat({ max: 8 }) }),
    }),
  );
  return { name: 'smtp', input, check: (i) => runSmtp(world, i) };
}

// ---- the machine's side -------------------------------------------------------------------------

/** The socket as the session sees it; records what a real one would object to. */
export class FuzzIo implements SessionIo {
  output = '';
  /** When false, only the length of the output is kept (floods). */
  keep = true;
  written = 0;
  closed = false;
  paused = false;
  readonly violations: string[] = [];

  constructor(private readonly failTls = false) {}

  write(data: string): void {
    if (this.closed) this.violations.push(`write after close: ${JSON.stringify(data.slice(0, 80))}`);
    this.written += data.length;
    if (this.keep) this.output += data;
  }
  startTls(): Promise<TlsInfo> {
    // The handshake takes a turn of the event loop, so input may arrive during it.
    return new Promise((resolve, reject) => setImmediate(() => (this.failTls ? reject(new Error('handshake failed')) : resolve(TLS13))));
  }
  close(): void {
    if (this.closed) this.violations.push('closed twice');
    this.closed = true;
  }
  pause(): void {
    if (this.paused) this.violations.push('paused twice');
    this.paused = true;
  }
  resume(): void {
    if (!this.paused) this.violations.push('resumed while not paused');
    this.paused = false;
  }
}

/** Collects what the session logs as an error: anything but the fakes' own faults is a bug. */
export function faultLogger(faults: string[]): Logger {
  const error = (obj: { err?: unknown }, msg: string) => {
    const cause = obj.err instanceof Error ? obj.err.message : String(obj.err);
    if (!EXPECTED_FAULTS.includes(cause)) faults.push(`${msg}: ${obj.err instanceof Error ? obj.err.stack : cause}`);
  };
  return { error, info: () => {}, warn: () => {}, debug: () => {} } as unknown as Logger;
}

export function sessionConfig(world: FuzzWorld, transport: Transport, input: Pick<SmtpInput, 'bareNewline' | 'limits'>): { config: SessionConfig; tls: TlsInfo | undefined } {
  const listener: ListenerKind = transport === 'mx' ? 'mx' : transport === 'submission' ? 'submission' : 'submissions';
  const config: SessionConfig = {
    hostname: HOSTNAME,
    listener,
    limits: input.limits,
    bareNewline: input.bareNewline,
    starttls: transport === 'mx' || transport === 'submission',
    auth: transport === 'mx' ? 'never' : 'after-tls',
    requireAuth: transport !== 'mx',
    mechanisms: world.mechanisms,
  };
  return { config, tls: transport === 'submissions-tls13' ? TLS13 : transport === 'submissions-tls12' ? TLS12 : undefined };
}

export function newSession(world: FuzzWorld, transport: Transport, input: Pick<SmtpInput, 'bareNewline' | 'limits' | 'failTls'>) {
  const io = new FuzzIo(input.failTls);
  const faults: string[] = [];
  const policy = new FakePolicy();
  const sink = new FakeSink();
  const guard = new FakeGuard();
  const { config, tls } = sessionConfig(world, transport, input);
  const session = new SmtpSession({
    config,
    clientIp: '192.0.2.7',
    clientPort: 40000,
    policy,
    authGuard: guard,
    sink,
    io,
    now: () => 1_700_000_000_000,
    logger: faultLogger(faults),
    ...(tls ? { tls } : {}),
  });
  return { session, io, faults, sink, guard, config };
}

/** Hands `bytes` over as the socket would: in these pieces, never while the session has paused it. */
export async function deliver(session: SmtpSession | { receive(b: Buffer): void; busy: boolean; closed: boolean }, io: { paused: boolean }, bytes: Buffer, at: readonly number[]): Promise<void> {
  for (const piece of cutAt(bytes, at)) {
    if (io.paused) {
      await settle(session);
      assert.ok(!io.paused || session.closed, 'the session paused the socket and, with nothing left to do, never resumed it');
    }
    session.receive(piece);
  }
}

async function runSmtp(world: FuzzWorld, input: SmtpInput): Promise<void> {
  const { session, io, faults, sink, guard, config } = newSession(world, input.transport, input);
  session.start();
  for (const [i, step] of input.steps.entries()) {
    if (input.shutdownAt === i) session.shutdown();
    await deliver(session, io, step.bytes, step.cuts);
    if (step.wait) await settle(session);
  }
  await settle(session);
  const closedByDialogue = session.closed;
  session.timeout();
  assert.ok(session.closed && io.closed, 'a timeout closes the session');

  assert.deepEqual(io.violations, []);
  assert.deepEqual(faults, [], 'nothing unexpected is logged');
  const replies = checkReplies(io.output);
  assert.ok(replies[0]?.code === 220 && replies[0].text[0] === `${HOSTNAME} ESMTP Postern`, `the greeting comes first: ${io.output.slice(0, 80)}`);
  const last = replies.at(-1);
  if (!closedByDialogue) assert.ok(last?.code === 421 && last.enhanced === '4.4.2', 'the timeout is the last reply');
  for (const [i, r] of replies.entries()) {
    // 221 and 421 end the connection: nothing may follow them.
    if ((r.code === 221 || r.code === 421) && i !== replies.length - 1) assert.fail(`a reply after ${r.code}: ${replies[i + 1]?.text[0]}`);
  }
  const blamed = replies.filter((r) => blamesClient({ code: r.code, enhanced: r.enhanced, lines: r.text })).length;
  assert.ok(blamed <= config.limits.maxErrors, `${blamed} errors blamed on the client, max_errors is ${config.limits.maxErrors}`);

  const messagesMax = config.limits.maxMessagesPerConnection;
  if (messagesMax > 0) assert.ok(sink.messages.length <= messagesMax, 'max_messages_per_connection');
  for (const { envelope, message } of sink.messages) {
    assert.ok(message.length <= config.limits.maxMessageSize, `a stored message of ${message.length} octets`);
    assert.ok(envelope.recipients.length >= 1 && envelope.recipients.length <= config.limits.maxRecipients, 'recipients per message');
    assert.doesNotMatch(message, /\r(?!\n)|(?<!\r)\n/, 'a stored message has CRLF line ends only');
    if (config.requireAuth) assert.ok(envelope.arrival.authUser !== undefined, 'submission without AUTH');
    if (envelope.arrival.authUser !== undefined) assert.ok(envelope.arrival.tls !== undefined, 'AUTH outside TLS');
  }
  for (const s of guard.successes) assert.ok(ACCOUNTS.includes(s.account), `a login as ${s.account}`);
}

export interface WireReply {
  readonly code: number;
  readonly enhanced: string | undefined;
  readonly text: string[];
}

/** Parses the wire output, asserting that every line of every reply is well-formed. */
export function checkReplies(output: string): WireReply[] {
  assert.ok(output === '' || output.endsWith('\r\n'), 'the output ends with CRLF');
  const replies: WireReply[] = [];
  let current: { code: string; lines: string[] } | undefined;
  for (const wireLine of output.split('\r\n').slice(0, -1)) {
    // RFC 5321 4.5.3.1.5: 512 octets. A 334 challenge is SASL data, which RFC 4954 4 lets reach
    // 12288 octets; SCRAM's server-first echoes the client's nonce, so it grows with it.
    const limit = wireLine.startsWith('334 ') ? 16_384 : 512;
    assert.ok(wireLine.length + 2 <= limit, `a reply line of ${wireLine.length + 2} octets (at most ${limit})`);
    const m = /^([2-5][0-9][0-9])([ -])([\x20-\x7e]*)$/.exec(wireLine);
    assert.ok(m, `malformed reply line ${JSON.stringify(wireLine)}`);
    const [, code = '', sep, text = ''] = m;
    if (current) assert.equal(code, current.code, 'one code per multi-line reply');
    current ??= { code, lines: [] };
    current.lines.push(text);
    if (sep === ' ') {
      replies.push(withEnhanced(Number(code), current.lines));
      current = undefined;
    }
  }
  assert.equal(current, undefined, 'unfinished multi-line reply');
  return replies;
}

/** RFC 2034: the enhanced code on every line, of the reply's class, except where Postern omits it. */
function withEnhanced(code: number, lines: string[]): WireReply {
  const enhanced = /^([245])\.(\d{1,3})\.(\d{1,3}) /.exec(lines[0] ?? '');
  if (enhanced) {
    assert.equal(enhanced[1], String(code)[0], `enhanced code of another class: ${code} ${lines[0]}`);
    const prefix = `${enhanced[0]}`;
    for (const l of lines) assert.ok(l.startsWith(prefix), `a line without the enhanced code: ${code} ${l}`);
    return { code, enhanced: prefix.trim(), text: lines.map((l) => l.slice(prefix.length)) };
  }
  // The greeting, the EHLO/HELO replies (RFC 2034 3), 354, and 334 with its base64 challenge.
  const first = lines[0] ?? '';
  const allowed =
    (code === 220 && first === `${HOSTNAME} ESMTP Postern`) ||
    (code === 250 && first === HOSTNAME) ||
    code === 354 ||
    (code === 334 && lines.length === 1 && /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(first));
  assert.ok(allowed, `a reply without an enhanced status code: ${code} ${lines.join(' | ')}`);
  return { code, enhanced: undefined, text: lines };
}

