import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { TEST_AUDIENCE, TEST_ISSUER, TestTokenIssuer } from '../../test/support/test-token-issuer.js';
import { configSchema, SASL_MECHANISMS } from '../config/schema.js';
import type { SaslContext, SaslMechanism, SaslStep } from './mechanism.js';
import { createMechanisms, createMechanismsFromConfig } from './registry.js';
import { ScramClient } from './scram-client.js';
import { MemoryCredentials } from '../../test/support/test-credentials.js';

const TLS12: SaslContext = { secure: true, hostname: 'mx.example.test' };
const TLS13: SaslContext = { secure: true, hostname: 'mx.example.test', channelBinding: Buffer.alloc(32, 7) };
const issuer = new TestTokenIssuer();
after(() => issuer.close());
let credentials: MemoryCredentials;
before(async () => {
  credentials = await MemoryCredentials.withPasswords({ 'alice@example.test': 'pencil' });
});

const oauth = () => ({ jwksFile: issuer.jwksFile, issuer: TEST_ISSUER, audience: TEST_AUDIENCE, identityClaim: 'email' });
const names = (mechanisms: SaslMechanism[], ctx: SaslContext) => mechanisms.filter((m) => m.available(ctx)).map((m) => m.name);

describe('createMechanisms', () => {
  test('all of them, in order of preference; -PLUS only with binding data, password ones only in TLS', () => {
    const all = createMechanisms({ credentials, hostname: 'mx.example.test', enabled: SASL_MECHANISMS, oauth: oauth() });
    assert.deepEqual(names(all, TLS13), [...SASL_MECHANISMS]);
    assert.deepEqual(names(all, TLS12), SASL_MECHANISMS.filter((n) => !n.endsWith('-PLUS')));
    assert.deepEqual(names(all, { secure: false, hostname: 'h' }), ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5']);
  });

  test('only the enabled ones; bearer mechanisms only with an identity provider', () => {
    const some = createMechanisms({ credentials, hostname: 'h', enabled: ['PLAIN', 'SCRAM-SHA-1', 'XOAUTH2'] });
    assert.deepEqual(names(some, TLS13), ['SCRAM-SHA-1', 'PLAIN']);
  });

  test('the defaults of [auth]: everything but CRAM-MD5, and no bearer tokens without [auth.oauth]', () => {
    const config = configSchema.parse({});
    assert.deepEqual(names(createMechanismsFromConfig(config, credentials), TLS13), [
      'SCRAM-SHA-256-PLUS',
      'SCRAM-SHA-256',
      'SCRAM-SHA-1-PLUS',
      'SCRAM-SHA-1',
      'PLAIN',
      'LOGIN',
    ]);
    const withOauth = configSchema.parse({
      auth: { cram_md5: true, mechanisms: ['CRAM-MD5', 'OAUTHBEARER'], oauth: { jwks_file: issuer.jwksFile, issuer: 'i', audience: 'a' } },
    });
    assert.deepEqual(names(createMechanismsFromConfig(withOauth, credentials), TLS13), ['CRAM-MD5', 'OAUTHBEARER']);
    assert.throws(() => configSchema.parse({ auth: { mechanisms: ['CRAM-MD5'] } }), /cram_md5/);
  });

  test('the downgrade check follows what is offered: "y" fails only when some -PLUS is on offer', async () => {
    const firstStep = async (enabled: string[], ctx: SaslContext) => {
      const mech = createMechanisms({ credentials, hostname: 'h', enabled }).find((m) => m.name === 'SCRAM-SHA-256');
      const client = new ScramClient({ hash: 'sha256', username: 'alice@example.test', password: 'pencil', claimBindingSupport: true });
      const step = await (mech as SaslMechanism).begin(ctx).start(Buffer.from(client.clientFirst()));
      return step.kind === 'failure' ? step.reason : step.kind;
    };
    assert.equal(await firstStep(['SCRAM-SHA-256'], TLS13), 'challenge', 'no -PLUS enabled');
    assert.equal(await firstStep(['SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS'], TLS12), 'challenge', 'no binding data: -PLUS not offered');
    assert.equal(await firstStep(['SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS'], TLS13), 'bad-credentials');
  });
});

describe('unknown account and wrong password look the same, for every mechanism', () => {
  /** Runs a login as the client would, returning the kinds of the steps and the final reason. */
  type Attempt = (mech: SaslMechanism, user: string, password: string) => Promise<string[]>;

  async function drive(mech: SaslMechanism, ctx: SaslContext, answer: (step: SaslStep, i: number) => Buffer | undefined, initial?: Buffer) {
    const exchange = mech.begin(ctx);
    const trace: string[] = [];
    let step = await exchange.start(initial);
    for (let i = 0; ; i++) {
      trace.push(step.kind === 'failure' ? `failure:${step.reason}` : step.kind);
      if (step.kind !== 'challenge') return trace;
      const response = answer(step, i);
      if (response === undefined) return trace;
      step = await exchange.step(response);
    }
  }

  const attempts: Record<string, Attempt> = {
    PLAIN: (m, u, p) => drive(m, TLS13, () => undefined, Buffer.from(`\0${u}\0${p}`)),
    LOGIN: (m, u, p) => drive(m, TLS13, (_s, i) => Buffer.from(i === 0 ? u : p)),
    'CRAM-MD5': (m, u, p) =>
      drive(m, TLS13, (s) => Buffer.from(`${u} ${createHmac('md5', p).update(s.kind === 'challenge' ? s.data : '').digest('hex')}`)),
  };
  for (const name of ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-1']) {
    attempts[name] = (m, u, p) => {
      const client = new ScramClient({
        hash: name.includes('256') ? 'sha256' : 'sha1',
        username: u,
        password: p,
        ...(name.endsWith('-PLUS') ? { channelBinding: TLS13.channelBinding } : {}),
      });
      const first = Buffer.from(client.clientFirst());
      return drive(
        m,
        TLS13,
        (s, i) => {
          const text = s.kind === 'challenge' ? s.data.toString() : '';
          if (i === 0) return Buffer.from(client.clientFinal(text));
          client.verifyServerFinal(text);
          return Buffer.alloc(0);
        },
        first,
      );
    };
  }
  const bearer = (user: string, email: string, xoauth2: boolean) => {
    const token = issuer.sign(issuer.claimsFor(email, { exp: 1 }));
    return Buffer.from(xoauth2 ? `user=${user}\x01auth=Bearer ${token}\x01\x01` : `n,a=${user},\x01auth=Bearer ${token}\x01\x01`);
  };
  attempts['OAUTHBEARER'] = (m, u) => drive(m, TLS13, () => Buffer.from('\x01'), bearer(u, u, false));
  attempts['XOAUTH2'] = (m, u) => drive(m, TLS13, () => Buffer.alloc(0), bearer(u, u, true));

  test('same steps, same failure', async () => {
    const mechanisms = createMechanisms({ credentials, hostname: 'h', enabled: SASL_MECHANISMS, oauth: oauth() });
    assert.equal(mechanisms.length, Object.keys(attempts).length);
    for (const mech of mechanisms) {
      const attempt = attempts[mech.name] as Attempt;
      const good = await attempt(mech, 'alice@example.test', 'pencil');
      const wrong = await attempt(mech, 'alice@example.test', 'pencil!');
      const unknown = await attempt(mech, 'zed@example.test', 'pencil');
      assert.deepEqual(wrong, unknown, mech.name);
      assert.equal(wrong.at(-1), 'failure:bad-credentials', mech.name);
      // The bearer attempts use expired tokens (no password to get wrong); the others can succeed.
      if (!['OAUTHBEARER', 'XOAUTH2', 'CRAM-MD5'].includes(mech.name)) assert.notEqual(good.at(-1), wrong.at(-1), mech.name);
    }
  });
});
