import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentActivity } from './recent-activity.js';

test('within(ms): whether the last mark is younger than ms', () => {
  let now = 1000;
  const activity = new RecentActivity(() => now);
  assert.equal(activity.within(100), false, 'never marked');
  activity.mark();
  now += 99;
  assert.equal(activity.within(100), true);
  now += 1;
  assert.equal(activity.within(100), false);
  activity.mark();
  assert.equal(activity.within(1), true);
});
