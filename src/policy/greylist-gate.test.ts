// The greylist as the MX policy asks it at RCPT TO: after the recipient checks, with the
// exemptions (authenticated, submission, trusted networks, DNSWL, SPF pass of an allowlisted
// domain), its reply and its log lines. SPF is answered by the test DNS server.

import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { TestDnsServer } from '../../test/support/dns-server.js';
import { configSchema } from '../config/schema.js';
import { createDnsClient, type DnsClient } from '../dns/resolver.js';
import type { RecipientDecision, SessionInfo, SessionPolicy } from '../smtp/session-host.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { GreylistStore, Store } from '../store/store.js';
import { GreylistGate } from './greylist-gate.js';
import { createSessionPolicy } from './session-policy.js';

const stranger: SessionInfo = {
  clientIp: '192.0.2.10',
  clientPort: 40000,
  listener: 'mx',
  helo: 'mail.remote.test',
  tls: undefined,
  authUser: undefined,
  sender: 'bob@remote.test',
};

let dir: string;
let store: Store;
let dnsServer: TestDnsServer;
let dns: DnsClient;
let clock: number;
let logs: Record<string, unknown>[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-greylist-gate-'));
  store = openSqliteStore(join(dir, 'postern.db'));
  await store.addDomain('ours.test');
  await store.addUser('alice@ours.test', { passwordHash: '$scrypt$test' });
  dnsServer = await TestDnsServer.start();
  dns = createDnsClient({ servers: [dnsServer.address], timeoutMs: 1000, maxCacheSeconds: 0 });
  dnsServer.set('bank.test', [{ type: 'TXT', strings: ['v=spf1 ip4:192.0.2.0/24 -all'] }]);
  dnsServer.set('mail.bank.test', [{ type: 'TXT', strings: ['v=spf1 ip4:192.0.2.0/24 -all'] }]);
  dnsServer.set('shop.test', [{ type: 'TXT', strings: ['v=spf1 ip4:192.0.2.0/24 -all'] }]);
  dnsServer.set('relay.bank.test', [{ type: 'TXT', strings: ['v=spf1 ip4:192.0.2.0/24 -all'] }]);
});

after(async () => {
  await store.close();
  await dnsServer.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  clock = Date.UTC(2025, 0, 1);
  logs = [];
});

function policy(greylist: Record<string, unknown> = {}, greylistStore: GreylistStore = store): SessionPolicy {
  const config = configSchema.parse({
    hostname: 'mx.ours.test',
    limits: { trusted_networks: ['127.0.0.0/8'] },
    greylist: { enabled: true, spf_allowlist: ['bank.test'], ...greylist },
  });
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const gate = GreylistGate.fromConfig(config, { store: greylistStore, dns, logger, now: () => clock });
  assert.ok(gate);
  return createSessionPolicy(store, { recipientDelimiter: '+', postmaster: '', hostname: 'mx.ours.test', logger, greylist: gate });
}

const rcpt = (p: SessionPolicy, info: Partial<SessionInfo> = {}, recipient = 'alice@ours.test'): Promise<RecipientDecision> =>
  p.checkRecipient({ ...stranger, ...info }, recipient, {});

function replyOf(d: RecipientDecision): string {
  return d.accept ? 'accepted' : `${d.reply.code} ${d.reply.enhanced} ${d.reply.lines.join(' ')}`;
}

const greylistLines = (): Record<string, unknown>[] => logs.filter((l) => l.msg === 'greylist');

describe('greylisting at RCPT TO', () => {
  test('off unless enabled', () => {
    assert.equal(GreylistGate.fromConfig(configSchema.parse({}), { store, dns, logger: pino({ level: 'silent' }) }), undefined);
  });

  test('451 4.7.1 with the seconds left, then the retry after the delay is accepted; each step logged', async () => {
    const p = policy();
    const sender = 'first@remote.test';
    assert.equal(replyOf(await rcpt(p, { sender })), '451 4.7.1 <alice@ours.test>: Greylisted, try again in 300 seconds');
    clock += 299_000;
    assert.equal(replyOf(await rcpt(p, { sender })), '451 4.7.1 <alice@ours.test>: Greylisted, try again in 1 second');
    clock += 1000;
    const accepted = await rcpt(p, { sender });
    assert.equal(accepted.accept, true);
    assert.deepEqual(accepted.accept && accepted.mailboxes, ['alice@ours.test']);
    assert.deepEqual(
      greylistLines().map((l) => [l.action, l.reason, l.retry_in_s, l.client]),
      [
        ['greylist', 'new', 300, '192.0.2.0/24'],
        ['greylist', 'early retry', 1, '192.0.2.0/24'],
        ['pass', 'retried after the delay', undefined, '192.0.2.0/24'],
      ],
    );
    assert.equal(greylistLines()[0]?.sender, sender);
    assert.equal(greylistLines()[0]?.recipient, 'alice@ours.test');
  });

  test('refusals come first: an unknown user gets 550 and a relay attempt 554, never a 451', async () => {
    const p = policy();
    assert.match(replyOf(await rcpt(p, { sender: 'u@remote.test' }, 'ghost@ours.test')), /^550 5\.1\.1/);
    assert.match(replyOf(await rcpt(p, { sender: 'u@remote.test' }, 'someone@elsewhere.test')), /^554 5\.7\.1/);
    assert.deepEqual(greylistLines(), []);
  });

  test('never greylisted: authenticated sessions, the submission listeners, trusted networks, DNSWL-vouched clients', async () => {
    const p = policy();
    const sender = 'exempt@remote.test';
    assert.equal((await rcpt(p, { sender, authUser: 'alice@ours.test' })).accept, true);
    assert.equal((await rcpt(p, { sender, listener: 'submission' })).accept, true);
    assert.equal((await rcpt(p, { sender, clientIp: '127.0.0.5' })).accept, true);
    assert.equal((await rcpt(p, { sender, dnsAllowlisted: true })).accept, true);
    assert.deepEqual(greylistLines().map((l) => l.reason), ['trusted network', 'dnswl']);
    // None of them left a triplet behind: the same client without the exemption is new.
    assert.equal(replyOf(await rcpt(p, { sender })).slice(0, 9), '451 4.7.1');
  });

  test('SPF pass of an allowlisted domain (or its subdomain) is exempt; SPF fail or another domain is not', async () => {
    const p = policy();
    assert.equal((await rcpt(p, { sender: 'a@bank.test' })).accept, true);
    assert.equal((await rcpt(p, { sender: 'b@mail.bank.test' })).accept, true);
    // A forged sender of the domain, from an address its SPF record does not name.
    assert.equal((await rcpt(p, { sender: 'c@bank.test', clientIp: '198.51.100.7' })).accept, false);
    // SPF passes, but the domain is not on the list.
    assert.equal((await rcpt(p, { sender: 'd@shop.test' })).accept, false);
    // Null sender: SPF checks the HELO identity (RFC 7208 2.4).
    assert.equal((await rcpt(p, { sender: '', helo: 'relay.bank.test' }, 'alice@ours.test')).accept, true);
    assert.deepEqual(
      greylistLines().map((l) => [l.action, l.reason]),
      [['pass', 'spf pass'], ['pass', 'spf pass'], ['greylist', 'new'], ['greylist', 'new'], ['pass', 'spf pass']],
    );
  });

  test('a greylist store that fails lets the mail through, with an error line', async () => {
    const fail = (): Promise<never> => Promise.reject(new Error('disk I/O error'));
    const failing: GreylistStore = {
      greylistSighting: fail,
      saveGreylistSighting: fail,
      greylistClient: fail,
      saveGreylistClient: fail,
      purgeGreylist: fail,
    };
    assert.equal((await rcpt(policy({}, failing), { sender: 'e@remote.test' })).accept, true);
    const line = greylistLines().at(-1);
    assert.equal(line?.level, 50);
    assert.equal(line?.reason, 'store failure');
  });
});
