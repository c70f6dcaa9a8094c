import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deriveScramSecret, type ScramHash } from '../auth/scram-secrets.js';
import type { SaslContext, SaslStep } from './mechanism.js';
import { ScramMechanism, type ScramOptions } from './scram.js';
import { ScramClient, ScramClientError, type ScramClientOptions } from './scram-client.js';
import { decodeSaslname, encodeSaslname } from './scram-messages.js';
import { lastStep, MemoryCredentials, runExchange } from '../../test/support/test-credentials.js';

const PLAIN_CTX: SaslContext = { secure: true, hostname: 'mx.example.test' };
const BINDING = randomBytes(32);
const TLS13_CTX: SaslContext = { secure: true, hostname: 'mx.example.test', channelBinding: BINDING };

let credentials: MemoryCredentials;
before(async () => {
  credentials = await MemoryCredentials.withPasswords({
    'alice@example.test': 'pencil',
    'o,dd=name@example.test': 'p\u00e4ss w\u00f6rd',
  });
  // The RFC examples' account: user "user", password "pencil", with the RFCs' salts.
  credentials.add({
    account: 'user',
    passwordHash: '$scrypt$unused',
    scramSha1: deriveScramSecret('pencil', 'sha1', 4096, Buffer.from('QSXCR+Q6sek8bf92', 'base64')),
    scramSha256: deriveScramSecret('pencil', 'sha256', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64')),
  });
  credentials.add({ account: 'old@example.test', passwordHash: '$scrypt$unused' });
});

function mechanism(hash: ScramHash, plus: boolean, extra: Partial<ScramOptions> = {}): ScramMechanism {
  return new ScramMechanism(credentials, { hash, plus, bindingOffered: (ctx) => ctx.channelBinding !== undefined, ...extra });
}

function challengeText(step: SaslStep | undefined): string {
  assert.ok(step?.kind === 'challenge', `expected a challenge, got ${JSON.stringify(step)}`);
  return step.data.toString();
}

/** A whole exchange with our client; returns the server's last step. */
async function login(mech: ScramMechanism, ctx: SaslContext, client: ScramClientOptions): Promise<SaslStep> {
  const c = new ScramClient(client);
  assert.equal(c.mechanism, mech.name);
  const exchange = mech.begin(ctx);
  const serverFirst = await exchange.start(Buffer.from(c.clientFirst()));
  if (serverFirst.kind !== 'challenge') return serverFirst;
  const serverFinal = await exchange.step(Buffer.from(c.clientFinal(serverFirst.data.toString())));
  if (serverFinal.kind !== 'challenge') return serverFinal;
  c.verifyServerFinal(serverFinal.data.toString());
  return exchange.step(Buffer.alloc(0));
}

function failureReason(step: SaslStep): string | undefined {
  return step.kind === 'failure' ? step.reason : undefined;
}

describe('SCRAM test vectors', () => {
  test('RFC 5802 section 5: SCRAM-SHA-1, byte for byte', async () => {
    const mech = mechanism('sha1', false, { serverNonce: () => '3rfcNHYJY1ZVvWVs7j' });
    const steps = await runExchange(
      mech.begin(PLAIN_CTX),
      'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
      'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
      '',
    );
    assert.equal(challengeText(steps[0]), 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    assert.equal(challengeText(steps[1]), 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
    assert.deepEqual(steps[2], { kind: 'success', identity: 'user' });
  });

  test('RFC 7677 section 3: SCRAM-SHA-256, byte for byte', async () => {
    const mech = mechanism('sha256', false, { serverNonce: () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    const steps = await runExchange(
      mech.begin(PLAIN_CTX),
      'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      '',
    );
    assert.equal(
      challengeText(steps[0]),
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    assert.equal(challengeText(steps[1]), 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
    assert.deepEqual(steps[2], { kind: 'success', identity: 'user' });
  });

  test('our client produces the RFC 7677 client messages from the same nonce', () => {
    const client = new ScramClient({ hash: 'sha256', username: 'user', password: 'pencil', nonce: 'rOprNGfwEbeRWgbNEkqO' });
    assert.equal(client.clientFirst(), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    assert.equal(
      client.clientFinal('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'),
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    assert.doesNotThrow(() => client.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
  });
});

describe('SCRAM exchanges', () => {
  for (const hash of ['sha1', 'sha256'] as const) {
    test(`${hash}: log in, with saslname escaping and a non-ASCII password`, async () => {
      assert.deepEqual(await login(mechanism(hash, false), PLAIN_CTX, { hash, username: 'Alice@example.test', password: 'pencil' }), {
        kind: 'success',
        identity: 'alice@example.test',
      });
      const odd = { hash, username: 'o,dd=name@example.test', password: 'pa\u0308ss w\u00f6rd' };
      assert.deepEqual(await login(mechanism(hash, false), PLAIN_CTX, odd), {
        kind: 'success',
        identity: 'o,dd=name@example.test',
      });
    });

    test(`${hash}-PLUS: bound to the TLS connection (tls-exporter)`, async () => {
      const plus = mechanism(hash, true);
      assert.equal(plus.available(PLAIN_CTX), false, 'no binding data, no -PLUS');
      assert.equal(plus.available(TLS13_CTX), true);
      const client = { hash, username: 'alice@example.test', password: 'pencil', channelBinding: BINDING };
      assert.deepEqual(await login(plus, TLS13_CTX, client), { kind: 'success', identity: 'alice@example.test' });
    });
  }

  test('-PLUS relayed onto another TLS connection fails (the binding data differ)', async () => {
    const client = { hash: 'sha256' as const, username: 'alice@example.test', password: 'pencil', channelBinding: randomBytes(32) };
    const step = await login(mechanism('sha256', true), TLS13_CTX, client);
    assert.equal(step.kind === 'failure' && step.detail, 'channel binding mismatch');
  });

  test('downgrade: "y" fails when we offered -PLUS, passes when we did not', async () => {
    const client = { hash: 'sha256' as const, username: 'alice@example.test', password: 'pencil', claimBindingSupport: true };
    const offered = await login(mechanism('sha256', false), TLS13_CTX, client);
    assert.equal(failureReason(offered), 'bad-credentials');
    assert.match(offered.kind === 'failure' ? (offered.detail ?? '') : '', /downgrade/);
    assert.equal((await login(mechanism('sha256', false), PLAIN_CTX, client)).kind, 'success');
  });

  test('the flag must fit the mechanism: -PLUS without binding, binding without -PLUS, other binding types', async () => {
    const plusWithN = await runExchange(mechanism('sha256', true).begin(TLS13_CTX), 'n,,n=user,r=abc');
    assert.equal(failureReason(lastStep(plusWithN)), 'malformed');
    const boundWithoutPlus = await runExchange(mechanism('sha256', false).begin(TLS13_CTX), 'p=tls-exporter,,n=user,r=abc');
    assert.equal(failureReason(lastStep(boundWithoutPlus)), 'malformed');
    const unique = await runExchange(mechanism('sha256', true).begin(TLS13_CTX), 'p=tls-unique,,n=user,r=abc');
    assert.equal(failureReason(lastStep(unique)), 'unsupported');
  });

  test('unknown account, account without SCRAM keys, wrong password: alike until the proof fails', async () => {
    const shapes: string[] = [];
    for (const [username, password] of [
      ['alice@example.test', 'wrong'],
      ['zed@example.test', 'pencil'],
      ['old@example.test', 'pencil'],
    ] as const) {
      const mech = mechanism('sha256', false, { serverNonce: () => 'SERVERNONCE' });
      const client = new ScramClient({ hash: 'sha256', username, password, nonce: 'N' });
      const exchange = mech.begin(PLAIN_CTX);
      const serverFirst = challengeText(await exchange.start(Buffer.from(client.clientFirst())));
      shapes.push(serverFirst.replace(/s=[A-Za-z0-9+/]{22}==/, 's=<16 bytes>'));
      const final = await exchange.step(Buffer.from(client.clientFinal(serverFirst)));
      assert.equal(failureReason(final), 'bad-credentials', username);
      assert.equal(final.kind === 'failure' && final.account, username);
    }
    assert.deepEqual(shapes, Array(3).fill('r=NSERVERNONCE,s=<16 bytes>,i=4096'));
  });

  test('an unknown account gets the same salt each time (a random one would give it away)', async () => {
    const salts = [];
    for (let i = 0; i < 2; i++) {
      const step = await mechanism('sha1', false).begin(PLAIN_CTX).start(Buffer.from('n,,n=nobody@example.test,r=x'));
      salts.push(/s=([^,]+)/.exec(challengeText(step))?.[1]);
    }
    assert.equal(salts[0], salts[1]);
    const other = await mechanism('sha1', false).begin(PLAIN_CTX).start(Buffer.from('n,,n=other@example.test,r=x'));
    assert.notEqual(/s=([^,]+)/.exec(challengeText(other))?.[1], salts[0]);
  });

  test('authzid: the account itself is fine, another account is refused', async () => {
    const self = { hash: 'sha256' as const, username: 'alice@example.test', password: 'pencil', authzid: 'ALICE@example.test' };
    assert.equal((await login(mechanism('sha256', false), PLAIN_CTX, self)).kind, 'success');
    const other = { ...self, authzid: 'bob@example.test' };
    assert.equal(failureReason(await login(mechanism('sha256', false), PLAIN_CTX, other)), 'bad-credentials');
  });

  test('protocol errors: mandatory extension, bad saslname, nonce mismatch, bad proof, missing ack', async () => {
    const start = (text: string) => runExchange(mechanism('sha256', false).begin(PLAIN_CTX), text);
    for (const bad of ['n,,m=ext,n=user,r=abc', 'n,,n=us=er,r=abc', 'n,,n=user', 'n,,n=user,r=a,b', 'x,,n=user,r=abc', 'n,', '']) {
      assert.equal(failureReason(lastStep(await start(bad))), 'malformed', bad);
    }
    const mech = mechanism('sha256', false, { serverNonce: () => 'S' });
    const nonceMismatch = await runExchange(mech.begin(PLAIN_CTX), 'n,,n=user,r=C', 'c=biws,r=CX,p=AAAA');
    assert.equal(failureReason(lastStep(nonceMismatch)), 'malformed');
    const shortProof = await runExchange(mech.begin(PLAIN_CTX), 'n,,n=user,r=C', 'c=biws,r=CS,p=AAAA');
    assert.equal(failureReason(lastStep(shortProof)), 'bad-credentials');
    const wrongBinding = await runExchange(mech.begin(PLAIN_CTX), 'n,,n=user,r=C', 'c=eSws,r=CS,p=AAAA');
    assert.equal(failureReason(lastStep(wrongBinding)), 'bad-credentials');

    const ackMech = mechanism('sha1', false, { serverNonce: () => '3rfcNHYJY1ZVvWVs7j' });
    const noAck = await runExchange(
      ackMech.begin(PLAIN_CTX),
      'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
      'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
      'not empty',
    );
    assert.equal(failureReason(lastStep(noAck)), 'malformed');
  });

  test('the client refuses an impostor server and weak parameters', () => {
    const client = new ScramClient({ hash: 'sha1', username: 'user', password: 'pencil', nonce: 'fyko+d2lbbFgONRv9qkxdawL' });
    client.clientFirst();
    client.clientFinal('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    assert.throws(() => client.verifyServerFinal('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA='), ScramClientError);
    const weak = new ScramClient({ hash: 'sha1', username: 'user', password: 'pencil', nonce: 'abc' });
    weak.clientFirst();
    assert.throws(() => weak.clientFinal('r=abcdef,s=QSXCR+Q6sek8bf92,i=1024'), /too low/);
    const hijack = new ScramClient({ hash: 'sha1', username: 'user', password: 'pencil', nonce: 'abc' });
    hijack.clientFirst();
    assert.throws(() => hijack.clientFinal('r=xyz,s=QSXCR+Q6sek8bf92,i=4096'), /nonce/);
  });

  test('saslname escaping (RFC 5802 section 5.1)', () => {
    assert.equal(encodeSaslname('a,b=c'), 'a=2Cb=3Dc');
    assert.equal(decodeSaslname('a=2Cb=3Dc'), 'a,b=c');
    assert.equal(decodeSaslname('a=2cb'), undefined);
    assert.equal(decodeSaslname('a=b'), undefined);
    assert.equal(decodeSaslname(''), undefined);
  });
});
