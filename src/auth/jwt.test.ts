import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { JwksError, JwksFile, parseJwks } from './jwks.js';
import { verifyJwt, type JwtExpectations } from './jwt.js';
import { TEST_AUDIENCE, TEST_ISSUER, TestTokenIssuer } from '../../test/support/test-token-issuer.js';

const issuer = new TestTokenIssuer();
after(() => issuer.close());
const jwks = new JwksFile(issuer.jwksFile);

function expectations(): JwtExpectations {
  return { issuer: TEST_ISSUER, audience: TEST_AUDIENCE, now: Math.floor(Date.now() / 1000), leewaySeconds: 60 };
}

function check(token: string): string {
  const result = verifyJwt(token, jwks.keys(), expectations());
  return result.ok ? 'ok' : result.reason;
}

describe('JWT validation', () => {
  test('accepts RS256 and ES256 tokens from the JWKS', () => {
    const claims = issuer.claimsFor('alice@example.test');
    assert.equal(check(issuer.sign(claims, { alg: 'RS256' })), 'ok');
    assert.equal(check(issuer.sign(claims, { alg: 'ES256' })), 'ok');
    const result = verifyJwt(issuer.sign(claims), jwks.keys(), expectations());
    assert.ok(result.ok);
    assert.equal(result.claims['email'], 'alice@example.test');
  });

  test('audience may be a list', () => {
    assert.equal(check(issuer.sign(issuer.claimsFor('a@x.test', { aud: ['other', TEST_AUDIENCE] }))), 'ok');
  });

  test('rejects expired, not-yet-valid, missing exp, wrong issuer and audience', () => {
    const now = Math.floor(Date.now() / 1000);
    assert.equal(check(issuer.sign(issuer.claimsFor('a@x.test', { exp: now - 120 }))), 'expired');
    // Within the leeway, an expiry just past is still accepted (clock skew).
    assert.equal(check(issuer.sign(issuer.claimsFor('a@x.test', { exp: now - 10 }))), 'ok');
    assert.equal(check(issuer.sign(issuer.claimsFor('a@x.test', { nbf: now + 600 }))), 'not yet valid (nbf)');
    assert.equal(check(issuer.sign(issuer.claimsFor('a@x.test', { exp: undefined }))), 'no expiry (exp)');
    assert.match(check(issuer.sign(issuer.claimsFor('a@x.test', { iss: 'https://evil.test' }))), /^issuer/);
    assert.match(check(issuer.sign(issuer.claimsFor('a@x.test', { aud: 'someone-else' }))), /^audience/);
  });

  test('rejects an unknown kid, a foreign key, alg none, HS256 and tampering', () => {
    const claims = issuer.claimsFor('a@x.test');
    assert.match(check(issuer.sign(claims, { kid: 'nope' })), /^no key for kid/);
    assert.equal(check(issuer.sign(claims, { foreignKey: true })), 'bad signature');
    assert.equal(check(issuer.sign(claims, { alg: 'ES256', foreignKey: true })), 'bad signature');
    assert.match(check(issuer.sign(claims, { alg: 'none' })), /algorithm "none"/);
    // The ES256 signature under the RSA key's kid: alg and key type must agree.
    assert.match(check(issuer.sign(claims, { alg: 'ES256', kid: 'rsa-1' })), /^no key/);
    const [h, , s] = issuer.sign(claims).split('.');
    const forged = Buffer.from(JSON.stringify({ ...claims, email: 'boss@x.test' })).toString('base64url');
    assert.equal(check(`${h}.${forged}.${s}`), 'bad signature');
    const hs = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'rsa-1' })).toString('base64url');
    assert.match(check(`${hs}.${forged}.${s}`), /algorithm "HS256"/);
    for (const junk of ['', 'a.b', 'a.b.c.d', '!!.??.**', `${h}.${forged}`]) assert.notEqual(check(junk), 'ok', junk);
  });

  test('JWKS: skips unusable keys, rejects a malformed file, notices a rotation', () => {
    assert.deepEqual(parseJwks('{"keys":[{"kty":"oct","k":"AAAA"},{"kty":"RSA","use":"enc"}]}', 't'), []);
    assert.throws(() => parseJwks('nope', 't'), JwksError);
    assert.throws(() => parseJwks('{"no":"keys"}', 't'), JwksError);
    const token = issuer.sign(issuer.claimsFor('a@x.test'));
    assert.equal(check(token), 'ok');
    writeFileSync(issuer.jwksFile, JSON.stringify({ keys: [] }) + ' '.repeat(7));
    assert.match(check(token), /^no key/);
    issuer.writeJwks();
    assert.equal(check(token), 'ok');
    assert.throws(() => new JwksFile('/nonexistent/jwks.json').keys(), JwksError);
  });
});
