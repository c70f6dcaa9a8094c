import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliveryLedger, flatness } from './soak-verdict.js';

describe('flatness', () => {
  it('ignores the warm-up tenth and accepts noise around a level', () => {
    // The first tenth climbs from nothing (heap growing); afterwards the level wobbles by 5%.
    const samples = Array.from({ length: 100 }, (_, i) => (i < 10 ? 10 * i : 100 + (i % 2 === 0 ? 5 : -5)));
    const f = flatness(samples, 'mean');
    assert.equal(f.early, 100);
    assert.equal(f.late, 100);
    assert.equal(f.flat, true);
  });

  it('flags a steady rise of more than 10%', () => {
    // A leak: +0.2% per sample, 100 -> ~120 over the run.
    const samples = Array.from({ length: 100 }, (_, i) => 100 * (1 + 0.002 * i));
    const f = flatness(samples, 'mean');
    assert.ok(f.ratio > 1.1, `ratio ${f.ratio}`);
    assert.equal(f.flat, false);
  });

  it('a fall is no leak: memory handed back or fewer connections open pass', () => {
    const samples = Array.from({ length: 50 }, (_, i) => (i < 25 ? 200 : 150));
    const f = flatness(samples, 'mean');
    assert.equal(f.ratio, 0.75);
    assert.equal(f.flat, true);
  });

  it('a single spike in the last fifth does not fail the run', () => {
    const samples = Array.from({ length: 100 }, (_, i) => (i === 95 ? 130 : 100));
    assert.equal(flatness(samples, 'mean').flat, true);
  });

  it('upper: RSS that swings low early and settles at its old high is flat; a rising high is not', () => {
    // The collector hands memory back every other sample in the first half of the run (150),
    // climbing back to 250 each time; later it keeps its heap at 240.
    const settling = Array.from({ length: 100 }, (_, i) => (i < 50 ? (i % 2 === 0 ? 150 : 250) : 240));
    assert.equal(flatness(settling, 'mean').flat, false, 'the mean mistakes the settling for growth');
    assert.equal(flatness(settling, 'upper').flat, true);
    // A leak: the level it climbs back to rises from 250 to over 300.
    const leaking = settling.map((v, i) => v + i * 0.7);
    assert.equal(flatness(leaking, 'upper').flat, false);
  });

  it('a short run skips the warm-up samples it is given, not just its first tenth', () => {
    // 24 samples: connections climb for the first 6, then hold at 90.
    const samples = Array.from({ length: 24 }, (_, i) => (i < 6 ? 30 + 10 * i : 90));
    assert.equal(flatness(samples, 'mean').flat, false);
    assert.equal(flatness(samples, 'mean', 0.1, 6).flat, true);
  });

  it('refuses to judge too few samples', () => {
    assert.throws(() => flatness([1, 2, 3], 'mean'), /too few/);
  });
});

describe('DeliveryLedger', () => {
  it('counts each destination of a message, in either order of 250 and delivery', () => {
    const ledger = new DeliveryLedger();
    ledger.delivered('m1', 'a@soak.test'); // Delivered before the client read the 250.
    ledger.accepted('m1', ['a@soak.test', 'B@soak.test']);
    ledger.accepted('m2', ['a@soak.test']);
    ledger.delivered('m1', 'b@soak.test');
    assert.equal(ledger.owedCount, 3);
    assert.equal(ledger.deliveredCount, 2);
    assert.deepEqual(ledger.missing(), ['m2 -> a@soak.test']);
    assert.deepEqual(ledger.unexpected(), []);
  });

  it('reports deliveries nobody was owed, and duplicates', () => {
    const ledger = new DeliveryLedger();
    ledger.accepted('m1', ['a@soak.test']);
    ledger.delivered('m1', 'a@soak.test');
    ledger.delivered('m1', 'a@soak.test');
    ledger.delivered('m9', 'a@soak.test');
    assert.equal(ledger.duplicates, 1);
    assert.deepEqual(ledger.unexpected(), ['m9 -> a@soak.test']);
    assert.deepEqual(ledger.missing(), []);
  });
});
