// Fuzz target: the POP3 session (src/pop3/session.ts) over Alice's in-memory maildrop, fed
// dialogues of structured hostile commands (message numbers that overflow, USER/PASS with odd
// names, AUTH with every mechanism, STLS with pipelined commands, huge lines, bare CR/LF, NULs)
// chopped at random chunk boundaries. Properties: nothing throws out of the machine and nothing
// unexpected is logged; every response is well-formed (test-pop3.ts parseResponses) with a status
// line of at most 512 octets (RFC 2449 4); the maildrop lock ends exactly once, and messages are
// only ever removed after a QUIT (RFC 1939 6); the session always returns to waiting for input and
// a timeout closes it.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { settle } from '../support/session-feed.js';
import { ALICE, PASSWORD, TLS, harness, parseResponses } from '../support/test-pop3.js';
import { MECHANISM_NAMES, TLS13, type FuzzWorld, type MechanismName } from './fuzz-world.js';
import { cuts, hostileBytes, hostileNumber, hostileText, mutated } from './hostile.js';
import { messagesFor } from './sasl-messages.js';
import { deliver, validAuthStep, type Step } from './smtp-target.js';
import type { FuzzTarget } from './target.js';

export interface Pop3Input {
  readonly tls: 'none' | 'tls13' | 'tls12';
  readonly maxErrors: number;
  readonly maxCommands: number;
  readonly steps: readonly Step[];
}

const crlf = fc.oneof({ weight: 20, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '', '\r\r\n') });
const number = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('1', '2', '3', '4') }, { weight: 2, arbitrary: hostileNumber });

const commandText = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom(`USER ${ALICE}`, `PASS ${PASSWORD}`, 'STAT', 'LIST', 'UIDL', 'CAPA', 'NOOP', 'RSET', 'QUIT', 'STLS', 'APOP a b', 'AUTH', 'quit', 'stat') },
  { weight: 30, arbitrary: fc.tuple(fc.constantFrom('LIST', 'UIDL', 'RETR', 'DELE', 'retr', 'dele'), number).map(([v, n]) => `${v} ${n}`) },
  { weight: 10, arbitrary: fc.tuple(number, number).map(([n, l]) => `TOP ${n} ${l}`) },
  { weight: 20, arbitrary: fc.tuple(fc.constantFrom('USER', 'PASS', 'LIST', 'TOP', 'AUTH', 'XTND', 'STAT', 'USER  ', 'PASS '), hostileText).map(([v, t]) => `${v} ${t}`) },
  { weight: 1, arbitrary: fc.constant('USER explode') },
);
const commandLine = mutated(fc.tuple(commandText, crlf).map(([c, e]) => Buffer.from(c + e)), 6);

function authStep(world: FuzzWorld): fc.Arbitrary<Buffer> {
  const name = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...MECHANISM_NAMES) }, { weight: 1, arbitrary: fc.constantFrom('plain', 'FOO', '') });
  return name.chain((n) => {
    const known = (MECHANISM_NAMES as readonly string[]).includes(n.toUpperCase()) ? (n.toUpperCase() as MechanismName) : 'PLAIN';
    const encoded = (m: Buffer) => fc.oneof({ weight: 12, arbitrary: fc.constant(m.toString('base64')) }, { weight: 1, arbitrary: fc.constantFrom('*', '=', '', 'not base64!') });
    return fc
      .tuple(messagesFor(known, world.credentials, world.tokens), fc.boolean())
      .chain(([messages, initial]) => fc.tuple(fc.tuple(...messages.map(encoded)), fc.constant(initial)))
      .map(([lines, initial]) => {
        const rest = [...lines];
        const first = initial && rest.length > 0 ? `AUTH ${n} ${rest.shift() || '='}` : `AUTH ${n}`;
        return Buffer.from([first, ...rest].map((l) => `${l}\r\n`).join(''));
      });
  });
}

function anyStep(world: FuzzWorld): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 10, arbitrary: commandLine },
    { weight: 2, arbitrary: authStep(world) },
    { weight: 1, arbitrary: fc.constant(Buffer.from('STLS\r\nUSER injected@example.test\r\n')) },
    { weight: 1, arbitrary: hostileBytes },
    { weight: 1, arbitrary: fc.constantFrom(254, 255, 256, 12289, 40_000).map((n) => Buffer.from(`USER ${'a'.repeat(n)}\r\n`)) },
  );
}

function scenario(world: FuzzWorld): fc.Arbitrary<Buffer[]> {
  // The harness's USER/PASS account, or AUTH (correct, or fuzzed) against the fuzz accounts.
  const login = fc.oneof(fc.constant(Buffer.from(`USER ${ALICE}\r\nPASS ${PASSWORD}\r\n`)), validAuthStep(world, MECHANISM_NAMES), authStep(world));
  const random = anyStep(world);
  const skeleton = [login, commandLine, commandLine, commandLine, fc.constant(Buffer.from('QUIT\r\n'))];
  const gap = fc.oneof({ weight: 6, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(random, { maxLength: 2 }) });
  const slot = (s: fc.Arbitrary<Buffer>) =>
    fc.tuple(fc.oneof({ weight: 10, arbitrary: s.map((b) => [b]) }, { weight: 1, arbitrary: random.map((b) => [b]) }, { weight: 1, arbitrary: fc.constant([]) }), gap).map(([m, g]) => [...m, ...g]);
  return fc.tuple(...skeleton.map(slot)).map((parts) => parts.flat());
}

export function pop3Target(world: FuzzWorld): FuzzTarget<Pop3Input> {
  const input = fc.record({
    tls: fc.constantFrom('none', 'tls13', 'tls12'),
    maxErrors: fc.constantFrom(3, 10, 1000),
    maxCommands: fc.constantFrom(5, 1000),
    steps: fc
      .oneof({ weight: 3, arbitrary: scenario(world) }, { weight: 1, arbitrary: fc.array(anyStep(world), { maxLength: 12 }) })
      .chain((bs) => fc.tuple(...bs.map((bytes) => fc.record({ bytes: fc.constant(bytes), cuts, wait: fc.boolean() })))),
  });
  return { name: 'pop3', input, check: (i) => runPop3(world, i) };
}

async function runPop3(world: FuzzWorld, input: Pop3Input): Promise<void> {
  const tls = input.tls === 'tls13' ? TLS13 : input.tls === 'tls12' ? TLS : undefined;
  const h = harness({ config: { mechanisms: world.mechanisms }, limits: { maxErrors: input.maxErrors, maxCommands: input.maxCommands }, ...(tls ? { tls } : {}) });
  const io = {
    get paused() {
      return h.io.pauses > h.io.resumes;
    },
  };
  h.session.start();
  for (const step of input.steps) {
    await deliver(h.session, io, step.bytes, step.cuts);
    if (step.wait) await settle(h.session);
  }
  await settle(h.session);
  h.session.timeout();
  await settle(h.session);
  assert.ok(h.session.closed && h.io.closed, 'a timeout closes the session');

  assert.deepEqual(
    h.errors.filter((e) => !(e.obj as { err?: Error }).err?.message.includes('database is down')),
    [],
    'nothing unexpected is logged',
  );
  const output = h.io.output;
  const responses = parseResponses(output);
  assert.ok(responses[0]?.startsWith('+OK pop.example'), 'the greeting comes first');
  for (const r of responses) {
    // A "+ " challenge is SASL data (RFC 5034 4), not a status line: SCRAM's server-first echoes
    // the client's nonce, so it grows with what the client sent.
    if (r.startsWith('+ ')) continue;
    assert.ok(Buffer.byteLength(r.split('|')[0] ?? '', 'latin1') + 2 <= 512, `a status line over 512 octets: ${r.slice(0, 80)}`);
  }
  const sentQuit = input.steps.some((s) => /quit/i.test(s.bytes.toString('latin1')));
  for (const drop of h.maildrops.opened) {
    assert.equal(drop.released + (drop.committed ? 1 : 0), 1, 'the maildrop lock ends exactly once');
    if (drop.committed && drop.committed.length > 0) assert.ok(sentQuit, 'messages removed without a QUIT');
  }
}
