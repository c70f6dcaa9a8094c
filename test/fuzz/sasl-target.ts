// Fuzz target: every SASL mechanism's step machine (src/sasl/), driven directly with the decoded
// client messages: valid, near-valid and hostile, in and out of turn, with more responses after
// the exchange has ended. Properties: a step never throws; every step is one of the three shapes;
// after success or failure nothing but failure follows; a success is only ever reported when the
// bytes sent carry the account's secret (the oracles in sasl-messages.ts); and SCRAM's server
// signature is the one a real client verifies.

import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { SaslContext, SaslStep } from '../../src/sasl/mechanism.js';
import { ACCOUNTS, CHANNEL_BINDING, HOSTNAME, MECHANISM_NAMES, PASSWORDS, type FuzzWorld, type MechanismName } from './fuzz-world.js';
import { applyEdits, edits, hostileBytes, type Mutation } from './hostile.js';
import {
  accountOf,
  bearerProves,
  cramMd5Proves,
  messagesFor,
  plainProves,
  samePassword,
  scramFinal,
  scramFinalPlan,
  scramFirst,
  scramKeys,
  scramProves,
  type ScramFinalPlan,
  type ScramPeer,
} from './sasl-messages.js';
import type { FuzzTarget } from './target.js';
import { mutatedText } from './hostile.js';

const CONTEXTS: Record<'tls13' | 'tls12' | 'clear', SaslContext> = {
  tls13: { secure: true, hostname: HOSTNAME, channelBinding: CHANNEL_BINDING },
  tls12: { secure: true, hostname: HOSTNAME },
  clear: { secure: false, hostname: HOSTNAME },
};

/** A response to send: bytes, or a SCRAM client-final made against the challenge just received. */
type Response = { readonly kind: 'bytes'; readonly bytes: Buffer } | { readonly kind: 'scram-final'; readonly plan: ScramFinalPlan; readonly edits: readonly Mutation[] };

export interface SaslInput {
  readonly context: keyof typeof CONTEXTS;
  readonly mechanism: MechanismName;
  /** Whether the first response goes as the initial response (RFC 4954 4) or answers a challenge. */
  readonly initial: 'with-first' | 'none' | 'empty';
  readonly responses: readonly Response[];
}

const bytes = (b: Buffer): Response => ({ kind: 'bytes', bytes: b });

export function saslTarget(world: FuzzWorld): FuzzTarget<SaslInput> {
  const responsesFor = (name: MechanismName): fc.Arbitrary<Response[]> => {
    if (!name.startsWith('SCRAM')) return messagesFor(name, world.credentials, world.tokens).map((ms) => ms.map(bytes));
    // SCRAM: the client-final is computed at run time from the server-first actually received.
    return fc
      .tuple(mutatedText(scramFirst.map((f) => f.text), 6), scramFinalPlan, fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: edits }), fc.constantFrom(Buffer.alloc(0), Buffer.from('x')))
      .map(([first, plan, finalEdits, ack]) => [bytes(first), { kind: 'scram-final', plan, edits: finalEdits }, bytes(ack)]);
  };
  const input = fc
    .record({ context: fc.constantFrom('tls13', 'tls12', 'clear'), mechanism: fc.constantFrom(...MECHANISM_NAMES) })
    .filter(({ context, mechanism }) => world.byName.get(mechanism)?.available(CONTEXTS[context]) === true)
    .chain(({ context, mechanism }) =>
      fc.record({
        context: fc.constant(context),
        mechanism: fc.constant(mechanism),
        initial: fc.constantFrom('with-first', 'with-first', 'none', 'empty'),
        responses: fc
          .tuple(
            fc.oneof({ weight: 5, arbitrary: responsesFor(mechanism) }, { weight: 1, arbitrary: fc.array(hostileBytes.map(bytes), { maxLength: 3 }) }),
            fc.array(hostileBytes.map(bytes), { maxLength: 2 }),
          )
          .map(([main, extra]) => [...main, ...extra]),
      }),
    );
  return { name: 'sasl', input, check: (i) => runSasl(world, i) };
}

async function runSasl(world: FuzzWorld, input: SaslInput): Promise<void> {
  const mechanism = world.byName.get(input.mechanism);
  assert.ok(mechanism);
  const exchange = mechanism.begin(CONTEXTS[input.context]);
  const sent: Buffer[] = [];
  let lastChallenge: Buffer | undefined;
  let clientFirst: string | undefined;
  let scramPeer: ScramPeer | undefined;
  let ended: SaslStep | undefined;
  const hash = input.mechanism.startsWith('SCRAM-SHA-1') ? 'sha1' : 'sha256';

  const observe = (step: SaslStep): void => {
    assertShape(step);
    if (ended) assert.equal(step.kind, 'failure', `after ${ended.kind}, a ${step.kind}: ${JSON.stringify(step)}`);
    if (step.kind === 'success') checkSuccess(world, input.mechanism, step.identity, sent, scramPeer);
    if (step.kind !== 'challenge') ended ??= step;
    else lastChallenge = step.data;
  };

  const responses = [...input.responses];
  let initial: Buffer | undefined;
  if (input.initial === 'empty') initial = Buffer.alloc(0);
  if (input.initial === 'with-first' && responses[0]?.kind === 'bytes') initial = (responses.shift() as { bytes: Buffer }).bytes;
  if (initial) sent.push(initial);
  if (initial && input.mechanism.startsWith('SCRAM')) clientFirst = initial.toString('utf8');
  observe(await exchange.start(initial));

  for (const response of responses) {
    let data: Buffer;
    if (response.kind === 'bytes') {
      data = response.bytes;
      if (input.mechanism.startsWith('SCRAM') && clientFirst === undefined) clientFirst = data.toString('utf8');
    } else {
      // The server-first this answers, and the account's password when the name is one that exists.
      const serverFirst = lastChallenge?.toString('utf8') ?? '';
      const name = /(?:^|,)n=([^,]*)/.exec(clientFirst?.split(',').slice(2).join(',') ?? '')?.[1] ?? '';
      const account = accountOf(name.replace(/=2C/g, ',').replace(/=3D/g, '='));
      scramPeer = { hash, clientFirst: clientFirst ?? '', serverFirst, password: PASSWORDS[account ?? ''] ?? 'x' };
      data = applyEdits(Buffer.from(scramFinal(response.plan, scramPeer)), response.edits);
    }
    sent.push(data);
    const step = await exchange.step(data);
    observe(step);
    if (step.kind === 'challenge' && scramPeer && sent.length >= 2) checkServerSignature(input.mechanism, scramPeer, data, step.data);
  }
}

function assertShape(step: SaslStep): void {
  switch (step.kind) {
    case 'challenge':
      assert.ok(Buffer.isBuffer(step.data), 'a challenge carries bytes');
      return;
    case 'success':
      assert.equal(typeof step.identity, 'string');
      return;
    case 'failure':
      assert.ok(['bad-credentials', 'malformed', 'unsupported'].includes(step.reason), `failure reason ${step.reason}`);
      assert.equal(step.challenge, undefined, 'no mechanism sets failure.challenge (mechanism.ts)');
      return;
    default:
      assert.fail(`a step of no known kind: ${JSON.stringify(step)}`);
  }
}

/** A success must be earned: the bytes sent carry the secret of the account it names. */
function checkSuccess(world: FuzzWorld, mechanism: MechanismName, identity: string, sent: readonly Buffer[], peer: ScramPeer | undefined): void {
  assert.ok(ACCOUNTS.includes(identity), `success for ${identity}, which is no account`);
  const last = sent.at(-1) ?? Buffer.alloc(0);
  const proof = (() => {
    switch (mechanism) {
      case 'PLAIN':
        return plainProves(last, identity);
      case 'LOGIN':
        return sent.length >= 2 && accountOf((sent.at(-2) as Buffer).toString('utf8')) === identity && samePassword(last.toString('utf8'), identity);
      case 'CRAM-MD5':
        return cramMd5Proves(last, identity);
      case 'OAUTHBEARER':
      case 'XOAUTH2':
        return bearerProves(last, identity, world.tokens);
      case 'SCRAM-SHA-1':
      case 'SCRAM-SHA-1-PLUS':
      case 'SCRAM-SHA-256':
      case 'SCRAM-SHA-256-PLUS':
        // Success comes on the empty answer to v=; the client-final is the message before it.
        return last.length === 0 && peer !== undefined && scramProves(mechanism, peer, (sent.at(-2) ?? Buffer.alloc(0)).toString('utf8'), identity);
    }
  })();
  assert.ok(proof, `${mechanism} let ${identity} in without the secret: sent ${JSON.stringify(sent.map((b) => b.toString('latin1')))}`);
}

/** RFC 5802 3: the server-final v= is HMAC(ServerKey, AuthMessage), which the client checks. */
function checkServerSignature(mechanism: MechanismName, peer: ScramPeer, clientFinal: Buffer, challenge: Buffer): void {
  const text = challenge.toString('utf8');
  if (!text.startsWith('v=')) return;
  const final = clientFinal.toString('utf8');
  const account = ACCOUNTS.find((a) => scramProves(mechanism, peer, final, a));
  assert.ok(account, `${mechanism} sent a server signature for a client-final that proves nothing: ${final}`);
  const keys = scramKeys(peer, final.slice(0, final.lastIndexOf(',p=')), PASSWORDS[account] ?? '');
  assert.equal(text, `v=${keys?.serverSignature.toString('base64')}`, 'the server signature');
}
