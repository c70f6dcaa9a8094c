import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LruMap } from './lru-map.js';

describe('LruMap', () => {
  test('forgets the least recently used entry beyond its capacity', () => {
    const m = new LruMap<string, number>(2);
    m.set('a', 1);
    m.set('b', 2);
    assert.equal(m.get('a'), 1); // "a" is now younger than "b"
    m.set('c', 3);
    assert.equal(m.size, 2);
    assert.equal(m.has('b'), false);
    assert.equal(m.get('a'), 1);
    assert.equal(m.get('c'), 3);
  });

  test('setting an existing key replaces it without growing', () => {
    const m = new LruMap<string, number>(2);
    m.set('a', 1);
    m.set('a', 2);
    m.set('b', 3);
    assert.equal(m.size, 2);
    assert.equal(m.get('a'), 2);
    assert.equal(m.delete('a'), true);
    assert.equal(m.delete('a'), false);
  });

  test('oldest() names the least recently used entry without making it used', () => {
    const m = new LruMap<string, number>(3);
    assert.equal(m.oldest(), undefined);
    m.set('a', 1);
    m.set('b', 2);
    m.get('a');
    assert.deepEqual(m.oldest(), ['b', 2]);
    assert.deepEqual(m.oldest(), ['b', 2]);
    m.delete('b');
    assert.deepEqual(m.oldest(), ['a', 1]);
  });

  test('a capacity below 1 is a programming error', () => {
    assert.throws(() => new LruMap(0), RangeError);
    assert.throws(() => new LruMap(1).resize(0), RangeError);
  });

  test('resize() below the size forgets the least recently used first; above it, lets the map grow', () => {
    const m = new LruMap<string, number>(4);
    for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) m.set(k, i);
    m.get('a');
    m.resize(2);
    assert.deepEqual([...m.entries()], [['d', 3], ['a', 0]]);
    m.resize(3);
    m.set('e', 4);
    assert.deepEqual([...m.entries()], [['d', 3], ['a', 0], ['e', 4]]);
    m.set('f', 5);
    assert.equal(m.size, 3);
    assert.equal(m.has('d'), false);
  });

  test('entries() lists least recently used first, without making any used', () => {
    const m = new LruMap<string, number>(3);
    m.set('a', 1);
    m.set('b', 2);
    m.get('a');
    assert.deepEqual([...m.entries()], [['b', 2], ['a', 1]]);
    assert.deepEqual([...m.entries()], [['b', 2], ['a', 1]]);
  });
});
