import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { QueueIdGenerator, isQueueId } from './queue-id.js';

describe('QueueIdGenerator', () => {
  test('ids are base62, 16 characters, unique and sort in the order they were made', () => {
    const gen = new QueueIdGenerator();
    const ids = Array.from({ length: 50_000 }, () => gen.next());
    assert.ok(ids.every((id) => /^[0-9A-Za-z]{16}$/.test(id) && isQueueId(id)));
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids);
  });

  test('a clock that steps back does not break the order', () => {
    const gen = new QueueIdGenerator();
    const a = gen.next(1_700_000_000_000);
    const b = gen.next(1_600_000_000_000);
    const c = gen.next(1_700_000_000_001);
    assert.ok(a < b && b < c, `${a} ${b} ${c}`);
  });

  test('later milliseconds sort later even across counter values', () => {
    const gen = new QueueIdGenerator();
    const first = [gen.next(1000), gen.next(1000), gen.next(1000)];
    const later = gen.next(1001);
    assert.ok(first.every((id) => id < later));
  });

  test('ids from two generators in the same millisecond differ', () => {
    assert.notEqual(new QueueIdGenerator().next(5), new QueueIdGenerator().next(5));
  });
});
