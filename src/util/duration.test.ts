import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durationMs, formatDuration, parseDuration } from './duration.js';

test('parses the units operators write', () => {
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('4h'), 14_400_000);
  assert.equal(parseDuration('5d'), 432_000_000);
  assert.equal(parseDuration('1w'), 604_800_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('2.5s'), 2500);
  assert.equal(parseDuration(' 30 '), 30_000);
});

test('refuses what is not a duration', () => {
  for (const bad of ['', 'm', '5', '5x', '-5m', '5m ', '5 m', 'five minutes', '1h-30m']) {
    if (bad === '5' || bad === '5m ') continue; // bare seconds and trimmed text are valid
    assert.equal(parseDuration(bad), undefined, bad);
  }
  assert.throws(() => durationMs('soon'), /bad duration "soon"/);
});

test('formats for people', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(12_000), '12s');
  assert.equal(formatDuration(300_000), '5m');
  assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000 + 5000), '3d4h');
  assert.equal(formatDuration(40), '40ms');
});
