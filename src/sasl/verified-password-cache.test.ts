import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VerifiedPasswordCache } from './verified-password-cache.js';

test('a remembered success matches only the same account, stored hash and password, within the TTL', () => {
  let now = 1_000_000;
  const cache = new VerifiedPasswordCache({ ttlMs: 60_000, capacity: 10, now: () => now });
  assert.equal(cache.matches('alice@example.test', 'hash-1', 'pw'), false, 'nothing before a success');
  cache.remember('alice@example.test', 'hash-1', 'pw');
  assert.equal(cache.matches('alice@example.test', 'hash-1', 'pw'), true);
  assert.equal(cache.matches('alice@example.test', 'hash-1', 'other'), false, 'a wrong password');
  assert.equal(cache.matches('alice@example.test', 'hash-2', 'pw'), false, 'the password was changed');
  assert.equal(cache.matches('bob@example.test', 'hash-1', 'pw'), false, 'another account');
  now += 60_000;
  assert.equal(cache.matches('alice@example.test', 'hash-1', 'pw'), false, 'expired');
});

test('the cache is bounded: the least recently used account is forgotten', () => {
  const cache = new VerifiedPasswordCache({ ttlMs: 60_000, capacity: 2 });
  cache.remember('a@x.test', 'h', 'pw');
  cache.remember('b@x.test', 'h', 'pw');
  cache.remember('c@x.test', 'h', 'pw');
  assert.equal(cache.matches('a@x.test', 'h', 'pw'), false);
  assert.equal(cache.matches('c@x.test', 'h', 'pw'), true);
});
