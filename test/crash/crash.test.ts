// Exactly once across crashes, small: 3 SIGKILLs of a real `postern serve` under load from real
// SMTP clients (crash-run.ts). Every message answered 250 must be in each of its Maildirs exactly
// once: none lost (RFC 5321 6.1), none filed twice by a restart that repeats a delivery whose
// "delivered" mark the crash took away (maildir.ts says how that is prevented).
// `npm run crash` is the same with 20 kills.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crashRun, describeResult } from './crash-run.js';

test('3 SIGKILLs under load: every message answered 250 is delivered, and nothing twice', { timeout: 180_000 }, async () => {
  const result = await crashRun({ kills: 3, connections: 8, minUpMs: 500, maxUpMs: 1500, lullMs: 400, seed: 5321, mailboxes: 2 });
  const summary = `${describeResult(result)}\n${result.examples.join('\n')}`;
  assert.ok(result.accepted > 0, `the load got no 250 at all: ${summary}`);
  assert.equal(result.lost, 0, summary);
  assert.equal(result.duplicated, 0, summary);
  assert.equal(result.delivered, result.accepted, summary);
});
