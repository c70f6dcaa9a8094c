import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_AUDIENCE, TEST_ISSUER, TestTokenIssuer } from '../../test/support/test-token-issuer.js';
import type { SaslContext, SaslStep } from './mechanism.js';
import { OAuthBearerMechanism, XOAuth2Mechanism, parseOAuthBearer, type OAuthConfig } from './oauthbearer.js';
import { lastStep, MemoryCredentials, runExchange } from '../../test/support/test-credentials.js';

const TLS: SaslContext = { secure: true, hostname: 'mx.example.test' };
const issuer = new TestTokenIssuer();
after(() => issuer.close());

let oauthbearer: OAuthBearerMechanism;
let xoauth2: XOAuth2Mechanism;
before(async () => {
  const credentials = await MemoryCredentials.withPasswords({ 'alice@example.test': 'x', 'bob@example.test': 'y' });
  const config: OAuthConfig = { jwksFile: issuer.jwksFile, issuer: TEST_ISSUER, audience: TEST_AUDIENCE, identityClaim: 'email' };
  oauthbearer = new OAuthBearerMechanism(config, credentials);
  xoauth2 = new XOAuth2Mechanism(config, credentials);
});

/** `user` null: no authzid in the gs2 header. */
function bearerMessage(token: string, user: string | null = 'alice@example.test'): string {
  const authzid = user === null ? '' : `a=${user}`;
  return `n,${authzid},\x01host=mx.example.test\x01port=587\x01auth=Bearer ${token}\x01\x01`;
}

function xoauth2Message(token: string, user = 'alice@example.test'): string {
  return `user=${user}\x01auth=Bearer ${token}\x01\x01`;
}

const aliceToken = (overrides: Record<string, unknown> = {}, options = {}) =>
  issuer.sign(issuer.claimsFor('Alice@Example.test', overrides), options);

/** The RFC 7628 3.2.2 failure: an error challenge, then failure whatever the client answers. */
async function assertRejected(steps: Promise<SaslStep[]>, errorJson: object, detail: RegExp): Promise<void> {
  const [challenge, failure] = await steps;
  assert.ok(challenge?.kind === 'challenge', JSON.stringify(challenge));
  assert.deepEqual(JSON.parse(challenge.data.toString()), errorJson);
  assert.ok(failure?.kind === 'failure');
  assert.equal(failure.reason, 'bad-credentials');
  assert.match(failure.detail ?? '', detail);
}

describe('OAUTHBEARER (RFC 7628)', () => {
  test('offered only inside TLS', () => {
    assert.equal(oauthbearer.available(TLS), true);
    assert.equal(oauthbearer.available({ secure: false, hostname: 'h' }), false);
  });

  test('a valid token (RS256 or ES256) for the named user logs in', async () => {
    for (const alg of ['RS256', 'ES256'] as const) {
      const steps = await runExchange(oauthbearer.begin(TLS), bearerMessage(aliceToken({}, { alg })));
      assert.deepEqual(steps, [{ kind: 'success', identity: 'alice@example.test' }], alg);
    }
  });

  test('without authzid the token names the account; without initial response an empty challenge first', async () => {
    assert.deepEqual(await runExchange(oauthbearer.begin(TLS), bearerMessage(aliceToken(), null)), [
      { kind: 'success', identity: 'alice@example.test' },
    ]);
    const steps = await runExchange(oauthbearer.begin(TLS), undefined, bearerMessage(aliceToken()));
    assert.deepEqual(steps[0], { kind: 'challenge', data: Buffer.alloc(0) });
    assert.equal(steps[1]?.kind, 'success');
  });

  const error = { status: 'invalid_token' };
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, () => string, RegExp][] = [
    ['expired', () => bearerMessage(aliceToken({ exp: now() - 600 })), /expired/],
    ['wrong issuer', () => bearerMessage(aliceToken({ iss: 'https://evil.test' })), /issuer/],
    ['wrong audience', () => bearerMessage(aliceToken({ aud: 'other-app' })), /audience/],
    ['unknown kid', () => bearerMessage(aliceToken({}, { kid: 'gone' })), /no key/],
    ['bad signature', () => bearerMessage(aliceToken({}, { foreignKey: true })), /bad signature/],
    ['alg none', () => bearerMessage(aliceToken({}, { alg: 'none' })), /algorithm "none"/],
    ['token for someone else', () => bearerMessage(aliceToken(), 'bob@example.test'), /not bob@example\.test/],
    ['no such account', () => bearerMessage(issuer.sign(issuer.claimsFor('zed@example.test')), null), /no account/],
    ['no email claim', () => bearerMessage(aliceToken({ email: undefined })), /no usable email claim/],
  ];
  for (const [name, message, detail] of cases) {
    test(`rejected: ${name}`, async () => {
      await assertRejected(runExchange(oauthbearer.begin(TLS), message(), '\x01'), error, detail);
    });
  }

  test('malformed messages fail at once', async () => {
    const token = aliceToken();
    for (const bad of [
      `n,,auth=Bearer ${token}\x01\x01`,
      `p=tls-exporter,,\x01auth=Bearer ${token}\x01\x01`,
      `n,,\x01auth=Bearer ${token}\x01`,
      `n,,\x01auth=Basic abc\x01\x01`,
      `n,,\x01\x01`,
      `n,a=bad=name,\x01auth=Bearer ${token}\x01\x01`,
    ]) {
      const step = lastStep(await runExchange(oauthbearer.begin(TLS), bad));
      assert.equal(step.kind === 'failure' && step.reason, 'malformed', JSON.stringify(bad));
    }
  });

  test('parses the RFC 7628 section 4.1 example', () => {
    const example = 'n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01';
    assert.deepEqual(parseOAuthBearer(example), { user: 'user@example.com', token: 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==' });
  });
});

describe('XOAUTH2', () => {
  test('a valid token for the named user logs in', async () => {
    assert.deepEqual(await runExchange(xoauth2.begin(TLS), xoauth2Message(aliceToken({}, { alg: 'ES256' }))), [
      { kind: 'success', identity: 'alice@example.test' },
    ]);
  });

  test("failures send Google's error JSON, then fail on the client's empty response", async () => {
    const error = { status: '401', schemes: 'bearer' };
    await assertRejected(runExchange(xoauth2.begin(TLS), xoauth2Message(aliceToken(), 'bob@example.test'), ''), error, /not bob/);
    await assertRejected(runExchange(xoauth2.begin(TLS), xoauth2Message(aliceToken({ exp: 1 })), ''), error, /expired/);
  });

  test('a message without user= is malformed', async () => {
    const step = lastStep(await runExchange(xoauth2.begin(TLS), `auth=Bearer ${aliceToken()}\x01\x01`));
    assert.equal(step.kind === 'failure' && step.reason, 'malformed');
  });
});
