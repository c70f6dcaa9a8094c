import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ArcVerdict, DmarcVerdict, SenderAuthVerdict, SpfVerdict } from '../sender-auth/verdict.js';
import { decideSenderAuth, type SenderAuthRules } from './sender-auth-decision.js';

const DEFAULTS: SenderAuthRules = { dmarcReject: 'reject', dmarcQuarantine: 'quarantine', spfFail: 'record', arcTrustedSealers: [] };

function verdict(dmarc: Partial<DmarcVerdict>, spf: Partial<SpfVerdict> = {}, arc: Partial<ArcVerdict> = {}): SenderAuthVerdict {
  return {
    spf: { result: 'none', domain: 'spam.test', resinfo: 'spf=none', ...spf },
    dkim: [{ result: 'fail', domain: 'bank.test', selector: 's', resinfo: 'dkim=fail' }],
    dmarc: { result: 'fail', domain: 'bank.test', policy: 'reject', pct: 100, comment: undefined, ...dmarc },
    arc: { result: 'none', instance: undefined, sealer: undefined, sealerDmarc: undefined, resinfo: 'arc=none', ...arc },
    iprev: { result: 'pass', ip: '192.0.2.1', name: 'mail.spam.test', comment: undefined },
  };
}

/** A random source that must not be asked. */
const never = (): number => assert.fail('pct is 100: no sampling');

describe('decideSenderAuth', () => {
  test('DMARC fail under p=reject: 550 5.7.1 naming the domain and each check', () => {
    const d = decideSenderAuth(verdict({}), DEFAULTS, never);
    assert.equal(d.action, 'reject');
    assert.ok(d.action === 'reject');
    assert.equal(d.reply.code, 550);
    assert.equal(d.reply.enhanced, '5.7.1');
    assert.deepEqual(d.reply.lines, ['Message rejected: bank.test publishes DMARC p=reject and this message fails it (spf=none smtp.mailfrom=spam.test, dkim=fail header.d=bank.test)']);
    assert.equal(d.appliedDmarcPolicy, 'reject');
  });

  test('DMARC fail under p=quarantine: quarantine; under p=none: deliver', () => {
    assert.equal(decideSenderAuth(verdict({ policy: 'quarantine' }), DEFAULTS, never).action, 'quarantine');
    const none = decideSenderAuth(verdict({ policy: 'none' }), DEFAULTS, never);
    assert.deepEqual(none, { action: 'deliver', appliedDmarcPolicy: 'none', reason: undefined });
  });

  test('the operator may soften each policy', () => {
    assert.equal(decideSenderAuth(verdict({}), { ...DEFAULTS, dmarcReject: 'quarantine' }, never).action, 'quarantine');
    const recorded = decideSenderAuth(verdict({}), { ...DEFAULTS, dmarcReject: 'record' }, never);
    assert.equal(recorded.action, 'deliver');
    assert.match(recorded.reason ?? '', /recorded only/);
    assert.equal(decideSenderAuth(verdict({ policy: 'quarantine' }), { ...DEFAULTS, dmarcQuarantine: 'record' }, never).action, 'deliver');
  });

  test('pct (RFC 7489 6.6.4): inside the sample the policy, outside it the next lower one', () => {
    const half = verdict({ pct: 50 });
    assert.equal(decideSenderAuth(half, DEFAULTS, () => 0.49).action, 'reject');
    const outside = decideSenderAuth(half, DEFAULTS, () => 0.5);
    assert.equal(outside.action, 'quarantine');
    assert.equal(outside.appliedDmarcPolicy, 'quarantine');
    assert.match(outside.reason ?? '', /pct=50: applied quarantine/);
    assert.equal(decideSenderAuth(verdict({ policy: 'quarantine', pct: 0 }), DEFAULTS, () => 0).action, 'deliver');
  });

  test('DMARC temperror, permerror, none and pass are never acted on', () => {
    for (const result of ['temperror', 'permerror', 'none', 'pass'] as const) {
      assert.deepEqual(decideSenderAuth(verdict({ result }), DEFAULTS, never), { action: 'deliver', appliedDmarcPolicy: undefined, reason: undefined }, result);
    }
  });

  test('SPF fail alone is recorded by default, refused with 550 5.7.23 when configured; softfail and temperror never', () => {
    const spfFail = verdict({ result: 'none', policy: undefined }, { result: 'fail', domain: 'forged.test' });
    assert.equal(decideSenderAuth(spfFail, DEFAULTS, never).action, 'deliver');
    const refused = decideSenderAuth(spfFail, { ...DEFAULTS, spfFail: 'reject' }, never);
    assert.ok(refused.action === 'reject');
    assert.equal(refused.reply.enhanced, '5.7.23');
    assert.match(refused.reply.lines[0] ?? '', /SPF of forged\.test/);
    for (const result of ['softfail', 'temperror', 'permerror'] as const) {
      const v = verdict({ result: 'none', policy: undefined }, { result });
      assert.equal(decideSenderAuth(v, { ...DEFAULTS, spfFail: 'reject' }, never).action, 'deliver', result);
    }
  });

  test('ARC (RFC 8617 7.2): a valid seal by a trusted forwarder that saw dmarc=pass overrides a DMARC fail, nothing less does', () => {
    const listMail = { result: 'pass', instance: 1, sealer: 'lists.example', sealerDmarc: 'pass' } as const;
    const trusting = { ...DEFAULTS, arcTrustedSealers: ['lists.example'] };
    const overridden = decideSenderAuth(verdict({}, {}, listMail), trusting, never);
    assert.deepEqual(overridden, {
      action: 'deliver',
      appliedDmarcPolicy: 'none',
      reason: 'dmarc bank.test p=reject, overridden: ARC sealed by lists.example (trusted), which saw dmarc=pass',
    });
    assert.equal(decideSenderAuth(verdict({ policy: 'quarantine' }, {}, listMail), trusting, never).action, 'deliver');
    // Not trusted, a broken chain, or a forwarder that did not see a pass: the policy stands.
    assert.equal(decideSenderAuth(verdict({}, {}, listMail), DEFAULTS, never).action, 'reject');
    assert.equal(decideSenderAuth(verdict({}, {}, { ...listMail, result: 'fail' }), trusting, never).action, 'reject');
    assert.equal(decideSenderAuth(verdict({}, {}, { ...listMail, sealerDmarc: 'fail' }), trusting, never).action, 'reject');
    assert.equal(decideSenderAuth(verdict({}, {}, { ...listMail, sealerDmarc: undefined }), trusting, never).action, 'reject');
    // spf_fail = "reject" is the operator's own rule, which ARC does not lift.
    const spfFail = verdict({}, { result: 'fail' }, listMail);
    assert.equal(decideSenderAuth(spfFail, { ...trusting, spfFail: 'reject' }, never).action, 'reject');
  });

  test('domains from the message cannot put control characters into the reply', () => {
    const d = decideSenderAuth(verdict({ domain: 'bank.test\r\n250 ok' }), DEFAULTS, never);
    assert.ok(d.action === 'reject');
    assert.doesNotMatch(d.reply.lines.join(''), /[\r\n]/);
  });
});
