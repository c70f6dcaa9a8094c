import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { RecipientDecision, SessionInfo, SessionPolicy } from '../smtp/session-host.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { normalizeDomain } from '../mail/address.js';
import { MAX_ALIAS_DEPTH } from '../directory/recipient-resolver.js';
import { NetworkList } from '../util/network-list.js';
import { ClientRateLimits } from './client-rate.js';
import { createSessionPolicy, type PolicyOptions } from './session-policy.js';

const HOSTNAME = 'mx.example.test';
const HOST_POSTMASTER = `postmaster@${HOSTNAME}`;
const LOCAL_DOMAINS = ['local.test', 'other.test', 'bücher.test', 'xn--caf-dma.test'];

const anonymous: SessionInfo = {
  clientIp: '192.0.2.10',
  clientPort: 40000,
  listener: 'mx',
  helo: 'client.remote.test',
  tls: undefined,
  authUser: undefined,
};
const authenticated: SessionInfo = { ...anonymous, authUser: 'alice@local.test' };

let dir: string;
let store: Store;
/** Addresses the store was asked about with getUser/aliasTargets, in order. */
const lookups: string[] = [];
let countingStore: Store;

async function seed(s: Store): Promise<void> {
  for (const d of LOCAL_DOMAINS) await s.addDomain(d);
  for (const u of ['alice@local.test', 'bob@local.test', 'carol@other.test', 'dave@bücher.test', 'erin@café.test']) {
    await s.addUser(u, { passwordHash: '$scrypt$test' });
  }
  const aliases: [string, string][] = [
    ['sales@local.test', 'alice@local.test'],
    ['sales@local.test', 'bob@local.test'],
    ['team@local.test', 'sales@local.test'],
    ['team@local.test', 'carol@other.test'],
    ['diamond@local.test', 'sales@local.test'],
    ['diamond@local.test', 'alice@local.test'],
    ['mixed@local.test', 'alice@local.test'],
    ['mixed@local.test', 'friend@remote.test'],
    ['outside@local.test', 'friend@remote.test'],
    ['dangling@local.test', 'ghost@local.test'],
    ['upper@local.test', 'ALICE@LOCAL.TEST'],
    ['news+list@local.test', 'bob@local.test'],
    ['loop-a@local.test', 'loop-b@local.test'],
    ['loop-b@local.test', 'loop-a@local.test'],
    ['@other.test', 'carol@other.test'],
    ['into-catchall@local.test', 'anything@other.test'],
  ];
  // A chain deeper than the limit, and one well within it.
  for (let i = 0; i <= MAX_ALIAS_DEPTH + 1; i++) aliases.push([`deep${i}@local.test`, `deep${i + 1}@local.test`]);
  aliases.push([`deep${MAX_ALIAS_DEPTH + 2}@local.test`, 'alice@local.test']);
  aliases.push(['short0@local.test', 'short1@local.test'], ['short1@local.test', 'short2@local.test']);
  aliases.push(['short2@local.test', 'bob@local.test']);
  for (const [source, target] of aliases) await s.addAlias(source, target);
}

function policy(overrides: Partial<PolicyOptions> = {}, s: Store = store): SessionPolicy {
  return createSessionPolicy(s, { recipientDelimiter: '+', postmaster: '', hostname: HOSTNAME, ...overrides });
}

function rcpt(p: SessionPolicy, recipient: string, info: SessionInfo = anonymous): Promise<RecipientDecision> {
  return p.checkRecipient(info, recipient, {});
}

function assertAccepted(d: RecipientDecision, address: string, mailboxes: string[], forwards: string[] = []): void {
  assert.ok(d.accept, `expected ${address} to be accepted, got ${JSON.stringify(d)}`);
  assert.equal(d.address, address);
  assert.deepEqual([...d.mailboxes].sort(), [...mailboxes].sort());
  assert.deepEqual([...(d.forwards ?? [])].sort(), [...forwards].sort());
}

function assertRefused(d: RecipientDecision, code: number, enhanced: string): void {
  assert.ok(!d.accept, `expected a refusal, got ${JSON.stringify(d)}`);
  assert.equal(d.reply.code, code);
  assert.equal(d.reply.enhanced, enhanced);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-policy-'));
  store = openSqliteStore(join(dir, 'postern.db'));
  await seed(store);
  // Delegates every call to the real store; only records which addresses were looked up.
  countingStore = new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === 'getUser' || prop === 'aliasTargets') lookups.push(String(args[0]));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('checkRecipient: local recipients', () => {
  const cases: { rcpt: string; address: string; mailboxes: string[]; forwards?: string[]; why: string }[] = [
    { why: 'user', rcpt: 'alice@local.test', address: 'alice@local.test', mailboxes: ['alice@local.test'] },
    { why: 'upper-case address', rcpt: 'ALICE@LOCAL.TEST', address: 'ALICE@local.test', mailboxes: ['alice@local.test'] },
    { why: 'trailing dot on a local domain', rcpt: 'alice@local.test.', address: 'alice@local.test', mailboxes: ['alice@local.test'] },
    { why: 'quoted local part', rcpt: '"alice"@local.test', address: '"alice"@local.test', mailboxes: ['alice@local.test'] },
    { why: 'user on a second domain', rcpt: 'carol@other.test', address: 'carol@other.test', mailboxes: ['carol@other.test'] },
    { why: 'alias', rcpt: 'sales@local.test', address: 'sales@local.test', mailboxes: ['alice@local.test', 'bob@local.test'] },
    {
      why: 'alias of an alias, across domains',
      rcpt: 'team@local.test',
      address: 'team@local.test',
      mailboxes: ['alice@local.test', 'bob@local.test', 'carol@other.test'],
    },
    { why: 'a mailbox reached twice is listed once', rcpt: 'diamond@local.test', address: 'diamond@local.test', mailboxes: ['alice@local.test', 'bob@local.test'] },
    { why: 'alias chain within the depth limit', rcpt: 'short0@local.test', address: 'short0@local.test', mailboxes: ['bob@local.test'] },
    { why: 'alias target stored in upper case', rcpt: 'upper@local.test', address: 'upper@local.test', mailboxes: ['alice@local.test'] },
    {
      why: 'remote alias targets become forwards',
      rcpt: 'mixed@local.test',
      address: 'mixed@local.test',
      mailboxes: ['alice@local.test'],
      forwards: ['friend@remote.test'],
    },
    {
      why: 'alias with only remote targets is accepted',
      rcpt: 'outside@local.test',
      address: 'outside@local.test',
      mailboxes: [],
      forwards: ['friend@remote.test'],
    },
    { why: 'alias target caught by a catch-all', rcpt: 'into-catchall@local.test', address: 'into-catchall@local.test', mailboxes: ['carol@other.test'] },
    { why: 'plus-addressing to a user', rcpt: 'alice+tag@local.test', address: 'alice+tag@local.test', mailboxes: ['alice@local.test'] },
    { why: 'plus-addressing to an alias', rcpt: 'sales+q3@local.test', address: 'sales+q3@local.test', mailboxes: ['alice@local.test', 'bob@local.test'] },
    { why: 'an exact alias wins over plus-addressing', rcpt: 'news+list@local.test', address: 'news+list@local.test', mailboxes: ['bob@local.test'] },
    { why: 'catch-all', rcpt: 'whoever@other.test', address: 'whoever@other.test', mailboxes: ['carol@other.test'] },
    { why: 'a user wins over the catch-all', rcpt: 'CAROL@other.test', address: 'CAROL@other.test', mailboxes: ['carol@other.test'] },
    { why: 'IDN domain added as U-label, asked as A-label', rcpt: 'dave@xn--bcher-kva.test', address: 'dave@xn--bcher-kva.test', mailboxes: ['dave@xn--bcher-kva.test'] },
    { why: 'IDN domain added as U-label, asked as U-label', rcpt: 'dave@BÜCHER.test', address: 'dave@xn--bcher-kva.test', mailboxes: ['dave@xn--bcher-kva.test'] },
    { why: 'IDN domain added as A-label, asked as U-label', rcpt: 'erin@café.test', address: 'erin@xn--caf-dma.test', mailboxes: ['erin@xn--caf-dma.test'] },
  ];
  for (const c of cases) {
    test(`${c.why}: ${c.rcpt}`, async () => {
      assertAccepted(await rcpt(policy(), c.rcpt), c.address, c.mailboxes, c.forwards);
    });
  }

  const unknown = [
    'nobody@local.test',
    'nobody+tag@local.test',
    '+alice@local.test',
    'alice-tag@local.test',
    'dangling@local.test',
    'erin@local.test',
  ];
  for (const r of unknown) {
    test(`unknown user: ${r} -> 550 5.1.1`, async () => {
      const d = await rcpt(policy(), r);
      assertRefused(d, 550, '5.1.1');
      assert.ok(!d.accept && d.reply.lines[0]?.includes('User unknown'));
    });
  }

  test('an empty delimiter turns plus-addressing off', async () => {
    assertRefused(await rcpt(policy({ recipientDelimiter: '' }), 'alice+tag@local.test'), 550, '5.1.1');
  });

  test('another delimiter', async () => {
    const p = policy({ recipientDelimiter: '-' });
    assertAccepted(await rcpt(p, 'alice-tag@local.test'), 'alice-tag@local.test', ['alice@local.test']);
    assertRefused(await rcpt(p, 'alice+tag@local.test'), 550, '5.1.1');
  });

  for (const r of ['loop-a@local.test', 'loop-b@local.test', 'deep0@local.test']) {
    test(`alias loop or runaway chain: ${r} -> 550 5.4.6`, async () => {
      const d = await rcpt(policy(), r);
      assertRefused(d, 550, '5.4.6');
      assert.ok(!d.accept && d.reply.lines[0]?.includes('Alias loop'));
    });
  }

  test('domains, users and aliases added while running are seen at once', async () => {
    const p = policy();
    assertRefused(await rcpt(p, 'frank@late.test'), 554, '5.7.1');
    await store.addDomain('late.test');
    assertRefused(await rcpt(p, 'frank@late.test'), 550, '5.1.1');
    await store.addUser('frank@late.test', { passwordHash: '$scrypt$test' });
    assertAccepted(await rcpt(p, 'frank@late.test'), 'frank@late.test', ['frank@late.test']);
    await store.addAlias('helpdesk@late.test', 'frank@late.test');
    assertAccepted(await rcpt(p, 'helpdesk@late.test'), 'helpdesk@late.test', ['frank@late.test']);
    await store.removeUser('frank@late.test');
    assertRefused(await rcpt(p, 'frank@late.test'), 550, '5.1.1');
  });
});

describe('checkRecipient: postmaster (RFC 5321 4.5.1)', () => {
  const forms = ['postmaster', 'Postmaster', 'POSTMASTER', 'postmaster@local.test', 'PostMaster@LOCAL.TEST', 'postmaster@other.test'];
  for (const r of forms) {
    test(`${r} goes to postmaster@hostname by default, never to a catch-all`, async () => {
      const d = await rcpt(policy(), r);
      assert.ok(d.accept);
      assert.deepEqual(d.mailboxes, [HOST_POSTMASTER]);
    });
  }

  test('the envelope keeps the bare form', async () => {
    assertAccepted(await rcpt(policy(), 'Postmaster'), 'Postmaster', [HOST_POSTMASTER]);
  });

  test('a configured local user receives postmaster mail', async () => {
    const p = policy({ postmaster: 'Bob@Local.Test' });
    assertAccepted(await rcpt(p, 'postmaster'), 'postmaster', ['bob@local.test']);
    assertAccepted(await rcpt(p, 'postmaster@other.test'), 'postmaster@other.test', ['bob@local.test']);
  });

  test('a configured remote postmaster: accepted, no local mailbox', async () => {
    assertAccepted(await rcpt(policy({ postmaster: 'admin@remote.test' }), 'postmaster@local.test'), 'postmaster@local.test', [], ['admin@remote.test']);
  });

  for (const configured of ['nobody@local.test', 'postmaster@local.test', 'not an address']) {
    test(`a configured postmaster that resolves nowhere (${configured}) falls back to postmaster@hostname`, async () => {
      const d = await rcpt(policy({ postmaster: configured }), 'postmaster@local.test');
      assert.ok(d.accept);
      assert.deepEqual(d.mailboxes, [HOST_POSTMASTER]);
    });
  }

  test('postmaster of a domain that is not ours is still a relay attempt', async () => {
    assertRefused(await rcpt(policy(), 'postmaster@remote.test'), 554, '5.7.1');
  });
});

describe('checkRecipient: relaying', () => {
  const relayTricks = [
    'user@remote.test',
    'user@REMOTE.TEST',
    'user@remote.test.',
    'user@local.test.remote.test',
    'user@evil-local.test',
    'alice@[127.0.0.1]',
    'alice@[IPv6:::1]',
    'user%remote.test@local.test',
    'alice%local.test@local.test',
    'remote.test!user@local.test',
    '"user@remote.test"@local.test',
    '"user%remote.test"@local.test',
    'user@remote.test@local.test',
  ];
  for (const r of relayTricks) {
    test(`never accepted unauthenticated: ${r}`, async () => {
      const d = await rcpt(policy(), r);
      assert.equal(d.accept, false);
      assertRefused(d, 554, '5.7.1');
      assert.ok(!d.accept && d.reply.lines[0]?.includes('Relay access denied'));
    });
  }

  test('an alias forwarding outside is accepted from anyone; its remote target itself is not', async () => {
    // The alias is local mail whose destination the operator chose: forwarding it is no relay.
    assertAccepted(await rcpt(policy(), 'outside@local.test'), 'outside@local.test', [], ['friend@remote.test']);
    const direct = await rcpt(policy(), 'friend@remote.test');
    assertRefused(direct, 554, '5.7.1');
    assert.ok(!direct.accept && direct.reply.lines[0]?.includes('Relay access denied'));
  });

  test('routing tricks on a local domain are refused before any user lookup', async () => {
    const p = policy({}, countingStore);
    for (const r of ['alice%remote.test@local.test', 'remote.test!alice@local.test', '"alice@remote.test"@local.test']) {
      lookups.length = 0;
      assertRefused(await rcpt(p, r), 554, '5.7.1');
      assert.deepEqual(lookups, [], `${r} looked up ${lookups.join(', ')}`);
    }
  });

  test('routing tricks stay refused when authenticated', async () => {
    for (const r of ['user%remote.test@local.test', 'remote.test!user@local.test', '"user@remote.test"@local.test', 'user@[127.0.0.1]']) {
      assertRefused(await rcpt(policy(), r, authenticated), 554, '5.7.1');
    }
  });

  test('an authenticated client may send to other domains (no local mailboxes)', async () => {
    assertAccepted(await rcpt(policy(), 'User@Remote.Test.', authenticated), 'User@remote.test', []);
  });

  test('an authenticated client still gets 550 for unknown local users', async () => {
    assertRefused(await rcpt(policy(), 'nobody@local.test', authenticated), 550, '5.1.1');
  });

  for (const r of ['user@-bad-.test', 'user@exa mple.test', 'user@a..test', 'no-at-sign', '@local.test', 'user@']) {
    test(`bad syntax: ${JSON.stringify(r)} -> 501 5.1.3`, async () => {
      assertRefused(await rcpt(policy(), r), 501, '5.1.3');
    });
  }

  test('property: an unauthenticated client never gets mail accepted for another domain', async () => {
    const p = policy();
    const atom = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+\/=?^_`{|}~.-]{1,24}$/);
    const quoted = fc.string({ minLength: 1, maxLength: 24 }).map((s) => `"${s.replace(/["\\\r\n]/g, '')}"`);
    const localPart = fc.oneof(atom, quoted, fc.constantFrom('postmaster', 'alice', 'sales', 'alice+x', 'alice%local.test'));
    const remoteDomain = fc
      .oneof(
        fc.domain(),
        fc.domain().map((d) => `${d}.`),
        fc.domain().map((d) => d.toUpperCase()),
        fc.constantFrom('local.test.evil.test', 'evil-local.test', 'xn--bcher-kva.test.evil', 'localtest', '[127.0.0.1]', '[IPv6:::1]'),
      )
      .filter((d) => !LOCAL_DOMAINS.some((l) => normalizeDomain(l) === normalizeDomain(d)));
    await fc.assert(
      fc.asyncProperty(localPart, remoteDomain, async (local, domain) => {
        const d = await rcpt(p, `${local}@${domain}`);
        assert.equal(d.accept, false, `${local}@${domain} was accepted`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('checkSender', () => {
  const accepted = ['', 'alice@local.test', 'someone@remote.test', 'x@REMOTE.TEST.', 'x@[192.0.2.1]', 'x@[IPv6:2001:db8::1]', '"a b"@bücher.test'];
  for (const s of accepted) {
    test(`accepts ${JSON.stringify(s)}`, async () => {
      assert.equal(await policy().checkSender(anonymous, s, {}), undefined);
    });
  }
  const refused = ['no-at-sign', 'postmaster', 'x@-bad-.test', 'x@[999.1.1.1]', 'x@[IPv6:nonsense]', 'x@[hostname]', '@remote.test'];
  for (const s of refused) {
    test(`refuses ${JSON.stringify(s)} with 501 5.1.7`, async () => {
      const r = await policy().checkSender(anonymous, s, {});
      assert.equal(r?.code, 501);
      assert.equal(r?.enhanced, '5.1.7');
    });
  }

  test('a client without AUTH is held to its message rate; an account, and a bad sender, are not counted', async () => {
    const clientRates = new ClientRateLimits({ connectionsPerMinute: 0, messagesPerMinute: 2, trusted: new NetworkList([]) });
    const p = policy({ clientRates });
    assert.equal((await p.checkSender(anonymous, 'no-at-sign', {}))?.code, 501);
    for (let i = 0; i < 5; i++) assert.equal(await p.checkSender(authenticated, 'alice@local.test', {}), undefined);
    assert.equal(await p.checkSender(anonymous, 'someone@remote.test', {}), undefined);
    assert.equal(await p.checkSender(anonymous, '', {}), undefined);
    const r = await p.checkSender(anonymous, 'someone@remote.test', {});
    assert.deepEqual([r?.code, r?.enhanced], [450, '4.7.1']);
    assert.equal(await p.checkSender({ ...anonymous, clientIp: '192.0.2.11' }, 'someone@remote.test', {}), undefined);
  });
});
