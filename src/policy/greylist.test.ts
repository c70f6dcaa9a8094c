import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { clientNetwork, Greylist, greylistSender, type GreylistSettings, type GreylistVerdict } from './greylist.js';
import { DAY_MS, HOUR_MS } from './rate-window.js';

const T0 = Date.UTC(2025, 0, 1);
const SECOND = 1000;
/** postgrey's defaults. */
const DEFAULTS: GreylistSettings = {
  delayMs: 300 * SECOND,
  maxAgeMs: 35 * DAY_MS,
  retryWindowMs: 2 * DAY_MS,
  autoWhitelistClients: 5,
  lookupBySubnet: true,
};

let dir: string;
let dbPath: string;
let store: Store;
let clock: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-greylist-'));
  dbPath = join(dir, 'postern.db');
  store = openSqliteStore(dbPath);
  clock = T0;
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const greylist = (settings: Partial<GreylistSettings> = {}, s: Store = store): Greylist =>
  new Greylist(s, { ...DEFAULTS, ...settings }, () => clock);

const check = (g: Greylist, ip = '192.0.2.10', sender = 'bob@remote.test', rcpt = 'alice@ours.test'): Promise<GreylistVerdict> =>
  g.check(ip, sender, rcpt);

function assertGreylisted(v: GreylistVerdict, retryInSeconds: number, fresh: boolean): void {
  assert.equal(v.kind, 'greylisted', JSON.stringify(v));
  if (v.kind !== 'greylisted') return;
  assert.equal(v.retryInSeconds, retryInSeconds);
  assert.equal(v.fresh, fresh);
}

/** Greylists a new triplet and lets its retry pass, `delay` later. */
async function passOnce(g: Greylist, sender: string, ip = '192.0.2.10'): Promise<GreylistVerdict> {
  assert.equal((await check(g, ip, sender)).kind, 'greylisted');
  clock += DEFAULTS.delayMs;
  return check(g, ip, sender);
}

describe('Greylist.check', () => {
  test('a first try is greylisted for the delay; an early retry too, with the seconds left; a retry after it passes', async () => {
    const g = greylist();
    assertGreylisted(await check(g), 300, true);
    clock += 100 * SECOND;
    assertGreylisted(await check(g), 200, false);
    clock += 199.5 * SECOND;
    // Half a second is left: the reply rounds up, never to "0 seconds".
    assertGreylisted(await check(g), 1, false);
    clock += 0.5 * SECOND;
    const passed = await check(g);
    assert.equal(passed.kind, 'passed');
    assert.equal(passed.kind === 'passed' && passed.retried, true);
    // Later mail of the same triplet passes at once, as a known triplet.
    clock += HOUR_MS;
    const again = await check(g);
    assert.equal(again.kind === 'passed' && again.retried, false);
  });

  test('each part of the triplet counts: another sender, recipient or network starts its own wait', async () => {
    const g = greylist();
    await passOnce(g, 'bob@remote.test');
    assert.equal((await check(g, '192.0.2.10', 'bob@remote.test')).kind, 'passed');
    assert.equal((await check(g, '192.0.2.10', 'carol@remote.test')).kind, 'greylisted');
    assert.equal((await check(g, '192.0.2.10', 'bob@remote.test', 'dave@ours.test')).kind, 'greylisted');
    assert.equal((await check(g, '198.51.100.10', 'bob@remote.test')).kind, 'greylisted');
  });

  test('the state is the store\'s: a new Greylist on the reopened database remembers the first try', async () => {
    assertGreylisted(await check(greylist()), 300, true);
    await store.close();
    store = openSqliteStore(dbPath);
    clock += 301 * SECOND;
    assert.equal((await check(greylist())).kind, 'passed');
  });

  test('a triplet not seen for max_age is forgotten; one seen within it is kept alive by each sighting', async () => {
    const g = greylist();
    await passOnce(g, 'bob@remote.test');
    clock += 34 * DAY_MS;
    assert.equal((await check(g)).kind, 'passed');
    clock += 35 * DAY_MS;
    assert.equal((await check(g)).kind, 'passed', 'exactly max_age after the last sighting is still within it');
    clock += 35 * DAY_MS + 1;
    assertGreylisted(await check(g), 300, true);
  });

  test('a triplet that never passed starts over once its retry window is over', async () => {
    const g = greylist();
    assertGreylisted(await check(g), 300, true);
    clock += DAY_MS;
    // Within the window the retry passes, even a day later.
    assert.equal((await check(g, '192.0.2.10', 'bob@remote.test', 'alice@ours.test')).kind, 'passed');
    assertGreylisted(await check(g, '192.0.2.10', 'carol@remote.test'), 300, true);
    clock += 2 * DAY_MS + 1;
    assertGreylisted(await check(g, '192.0.2.10', 'carol@remote.test'), 300, true);
  });

  test('clients of one IPv4 /24 or IPv6 /64 share their triplets; lookup by host does not', async () => {
    const g = greylist();
    await passOnce(g, 'bob@remote.test', '192.0.2.10');
    assert.equal((await check(g, '192.0.2.200', 'bob@remote.test')).kind, 'passed');
    assert.equal((await check(g, '192.0.3.10', 'bob@remote.test')).kind, 'greylisted');

    await passOnce(g, 'bob@remote.test', '2001:db8:1:2::10');
    assert.equal((await check(g, '2001:db8:1:2:ffff::1', 'bob@remote.test')).kind, 'passed');
    assert.equal((await check(g, '2001:db8:1:3::10', 'bob@remote.test')).kind, 'greylisted');

    const byHost = greylist({ lookupBySubnet: false });
    await passOnce(byHost, 'erin@remote.test', '203.0.113.1');
    assert.equal((await check(byHost, '203.0.113.1', 'erin@remote.test')).kind, 'passed');
    assert.equal((await check(byHost, '203.0.113.2', 'erin@remote.test')).kind, 'greylisted');
  });

  test('a sender whose address changes per message (VERP, extensions, BATV, SRS) is one sender', async () => {
    const g = greylist();
    await passOnce(g, 'bounce-1234-5678@lists.remote.test');
    assert.equal((await check(g, '192.0.2.10', 'Bounce-9999-1@Lists.Remote.Test')).kind, 'passed');
    await passOnce(g, 'news+id42@remote.test');
    assert.equal((await check(g, '192.0.2.10', 'news+id43@remote.test')).kind, 'passed');
    await passOnce(g, 'prvs=1234abcdef=frank@remote.test');
    assert.equal((await check(g, '192.0.2.10', 'prvs=2345bcdefa=frank@remote.test')).kind, 'passed');
    await passOnce(g, 'SRS0=HHHH=TT=origin.test=gina@forwarder.test');
    assert.equal((await check(g, '192.0.2.10', 'SRS0=hh2=UV=origin.test=gina@forwarder.test')).kind, 'passed');
  });

  test('auto-whitelist: after 5 retries that passed (one an hour at most), the client network skips greylisting', async () => {
    const g = greylist();
    for (let i = 1; i <= 4; i++) {
      if (i > 1) clock += HOUR_MS;
      const v = await passOnce(g, `sender${'x'.repeat(i)}@remote.test`);
      assert.equal(v.kind === 'passed' && v.clientWhitelisted, false, `pass ${i}`);
    }
    // A fifth pass within the hour of the fourth does not count.
    const early = await passOnce(g, 'burst@remote.test');
    assert.equal(early.kind === 'passed' && early.clientWhitelisted, false);
    assert.equal((await check(g, '192.0.2.77', 'new@remote.test')).kind, 'greylisted');
    clock += HOUR_MS;
    const fifth = await passOnce(g, 'fifth@remote.test');
    assert.equal(fifth.kind === 'passed' && fifth.clientWhitelisted, true);
    // A new triplet from anywhere in the /24 now passes at once, and stores no triplet.
    const v = await check(g, '192.0.2.99', 'someone-new@remote.test', 'new@ours.test');
    assert.deepEqual(v, { kind: 'whitelisted-client', client: '192.0.2.0/24', passed: 5 });
    assert.equal(await store.greylistSighting({ client: '192.0.2.0/24', sender: 'someone-new@remote.test', recipient: 'new@ours.test' }), undefined);
    // Other networks still wait.
    assert.equal((await check(g, '198.51.100.1', 'someone-new@remote.test')).kind, 'greylisted');
  });

  test('a known triplet passing again does not count towards the auto-whitelist; 0 turns it off', async () => {
    const g = greylist({ autoWhitelistClients: 2 });
    await passOnce(g, 'bob@remote.test');
    for (let i = 0; i < 5; i++) {
      clock += 2 * HOUR_MS;
      assert.equal((await check(g)).kind, 'passed');
    }
    assert.deepEqual(await store.greylistClient('192.0.2.0/24'), { passed: 1, lastSeen: T0 + DEFAULTS.delayMs });

    const off = greylist({ autoWhitelistClients: 0 });
    for (let i = 0; i < 3; i++) {
      clock += 2 * HOUR_MS;
      await passOnce(off, `off${i}@remote.test`, '203.0.113.5');
    }
    assert.equal(await store.greylistClient('203.0.113.0/24'), undefined);
  });

  test('a whitelisted client not seen for max_age is forgotten; an active one is refreshed hourly', async () => {
    const g = greylist({ autoWhitelistClients: 1 });
    await passOnce(g, 'bob@remote.test');
    assert.equal((await check(g, '192.0.2.10', 'carol@remote.test')).kind, 'whitelisted-client');
    clock += 30 * DAY_MS;
    assert.equal((await check(g, '192.0.2.10', 'dave@remote.test')).kind, 'whitelisted-client');
    assert.equal((await store.greylistClient('192.0.2.0/24'))?.lastSeen, clock, 'refreshed');
    clock += 35 * DAY_MS + 1;
    assert.equal((await check(g, '192.0.2.10', 'erin@remote.test')).kind, 'greylisted');
  });

  test('the daily purge deletes expired triplets and clients, and unpassed triplets past their retry window', async () => {
    const g = greylist({ autoWhitelistClients: 1 });
    await passOnce(g, 'kept@remote.test');
    assert.equal((await check(g, '198.51.100.1', 'never-retried@remote.test')).kind, 'greylisted');
    clock += 3 * DAY_MS;
    // The next check runs the purge (a day has passed since the first): the unpassed triplet goes.
    await check(g, '203.0.113.1', 'trigger@remote.test');
    assert.equal(await store.greylistSighting({ client: '198.51.100.0/24', sender: 'never-retried@remote.test', recipient: 'alice@ours.test' }), undefined);
    const kept = { client: '192.0.2.0/24', sender: 'kept@remote.test', recipient: 'alice@ours.test' };
    assert.ok(await store.greylistSighting(kept));
    clock += 36 * DAY_MS;
    await check(g, '203.0.113.1', 'trigger2@remote.test');
    assert.equal(await store.greylistSighting(kept), undefined);
    assert.equal(await store.greylistClient('192.0.2.0/24'), undefined);
  });
});

describe('greylist keys', () => {
  test('clientNetwork: /24, /64, canonical forms, IPv4-mapped IPv6', () => {
    assert.equal(clientNetwork('192.0.2.77', true), '192.0.2.0/24');
    assert.equal(clientNetwork('::ffff:192.0.2.77', true), '192.0.2.0/24');
    assert.equal(clientNetwork('2001:DB8:0:0:1::5', true), '2001:db8:0:0::/64');
    assert.equal(clientNetwork('2001:0db8::1', false), '2001:db8::1');
    assert.equal(clientNetwork('192.0.2.77', false), '192.0.2.77');
  });

  test('greylistSender: postgrey\'s substitutions and the BATV and SRS tags', () => {
    assert.equal(greylistSender(''), '');
    assert.equal(greylistSender('Bob@Remote.Test'), 'bob@remote.test');
    assert.equal(greylistSender('bob+news@remote.test'), 'bob@remote.test');
    assert.equal(greylistSender('bounce-123-45@lists.test'), 'bounce-#-#@lists.test');
    assert.equal(greylistSender('user2025@remote.test'), 'user2025@remote.test');
    assert.equal(greylistSender('prvs=0123abcdef=bob@remote.test'), 'bob@remote.test');
    assert.equal(greylistSender('msprvs1=19abcd=bob@remote.test'), 'bob@remote.test');
    assert.equal(greylistSender('SRS0=a1B2=XY=origin.test=bob@fwd.test'), 'srs0=origin.test=bob@fwd.test');
    assert.equal(greylistSender('SRS1=zz=fwd1.test==a1B2=XY=origin.test=bob@fwd2.test'), 'srs1=fwd1.test==origin.test=bob@fwd2.test');
  });
});
