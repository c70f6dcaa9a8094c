import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dnsblVerdict, parseDnsblSite, type DnsblAnswer } from './dnsbl-score.js';

test('a site: zone, optional =pattern with numbers, [a..b] ranges and [a;b] lists, optional *weight', () => {
  assert.deepEqual(parseDnsblSite('zen.spamhaus.org*3'), { text: 'zen.spamhaus.org*3', zone: 'zen.spamhaus.org', pattern: undefined, weight: 3 });
  assert.equal(parseDnsblSite('bl.example').weight, 1);
  const wl = parseDnsblSite('list.dnswl.org=127.0.[0..255].[1;3]*-5');
  assert.equal(wl.weight, -5);
  assert.deepEqual(wl.pattern, [{ from: 127, to: 127 }, { from: 0, to: 0 }, { from: 0, to: 255 }, { oneOf: [1, 3] }]);
  assert.throws(() => parseDnsblSite('bl.example=127.0.0'), /not a DNSBL site: expected zone\[=pattern\]\[\*weight\]/);
  assert.throws(() => parseDnsblSite('bl.example*x'), /not a DNSBL site/);
});

const sites = ['bl.example*3', 'wl.example=127.0.[0..255].[1..3]*-5', 'pbl.example=127.0.0.10*1'].map(parseDnsblSite);
const none: DnsblAnswer = { kind: 'not-listed' };
const codes = (...c: string[]): DnsblAnswer => ({ kind: 'answered', codes: c });

test('weights of matching sites add up; the threshold is reached at equality', () => {
  const v = dnsblVerdict(sites, [codes('127.0.0.2', '127.0.0.4'), none, none], 3);
  assert.equal(v.score, 3);
  assert.equal(v.blocked, true);
  assert.deepEqual(v.blockedBy, ['bl.example']);
  assert.equal(dnsblVerdict(sites, [none, none, codes('127.0.0.10')], 3).blocked, false);
});

test('an allowlist answer inside its pattern subtracts; outside it counts nothing', () => {
  assert.equal(dnsblVerdict(sites, [codes('127.0.0.2'), codes('127.0.9.2'), none], 3).score, -2);
  const outside = dnsblVerdict(sites, [codes('127.0.0.2'), codes('127.0.9.7'), codes('127.0.0.11')], 3);
  assert.equal(outside.score, 3);
  assert.deepEqual(outside.hits.map((h) => h.site.zone), ['bl.example']);
});

test('allowlisted: only when the allowlists outweigh the blocklists (score below zero)', () => {
  assert.equal(dnsblVerdict(sites, [none, codes('127.0.9.2'), none], 3).allowlisted, true);
  assert.equal(dnsblVerdict(sites, [codes('127.0.0.2'), codes('127.0.9.2'), none], 3).allowlisted, true);
  // 3 + (-5) + 1 + 1 = 0: allowlisted needs the sum below zero.
  const offset = [...sites, parseDnsblSite('more.example*1')];
  assert.equal(dnsblVerdict(offset, [codes('127.0.0.2'), codes('127.0.9.2'), codes('127.0.0.10'), codes('127.0.0.2')], 9).allowlisted, false);
  assert.equal(dnsblVerdict(sites, [none, none, none], 3).allowlisted, false);
});

test('127.255.255.0/24 answers are errors, never listings; lists without an answer count 0', () => {
  const v = dnsblVerdict(sites, [codes('127.255.255.254'), { kind: 'no-answer', reason: 'late' }, none], 1);
  assert.equal(v.score, 0);
  assert.equal(v.blocked, false);
  assert.deepEqual(v.errors.map((e) => e.codes), [['127.255.255.254']]);
  assert.deepEqual(v.unanswered.map((u) => u.reason), ['late']);
});
