import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { AccountRateLimiter } from './rate-limits.js';
import { addToWindow, countInWindow, DAY_MS, HOUR_MS } from './rate-window.js';

const ALICE = 'alice@ours.test';
/** A fixed point in time at the start of an hour (and of a UTC day). */
const T0 = Date.UTC(2024, 0, 1);

let dir: string;
let dbPath: string;
let store: Store;
let clock: number;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-rate-'));
  dbPath = join(dir, 'postern.db');
  store = openSqliteStore(dbPath);
  await store.addDomain('ours.test');
  await store.addUser(ALICE, { passwordHash: '$scrypt$test' });
  await store.addUser('bob@ours.test', { passwordHash: '$scrypt$test' });
  clock = T0;
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function limiter(maxMessagesPerHour: number, maxRecipientsPerDay: number, s: Store = store): AccountRateLimiter {
  return new AccountRateLimiter(s, { maxMessagesPerHour, maxRecipientsPerDay, now: () => clock });
}

/** Sends `n` one-recipient messages as far as the limiter allows; returns how many it allowed. */
async function sendAllowed(l: AccountRateLimiter, account: string, n: number): Promise<number> {
  let sent = 0;
  for (let i = 0; i < n; i++) {
    if ((await l.checkMessage(account)) !== undefined) break;
    await l.record(account, 1);
    sent++;
  }
  return sent;
}

describe('rate-window', () => {
  test('the previous window counts in proportion to its part still inside the sliding window', () => {
    let w = addToWindow(undefined, T0 + 10, HOUR_MS, 10);
    assert.equal(countInWindow(w, T0 + 20, HOUR_MS), 10);
    assert.equal(countInWindow(w, T0 + HOUR_MS + HOUR_MS / 4, HOUR_MS), 7); // 10 * 3/4, rounded down
    w = addToWindow(w, T0 + HOUR_MS + 1, HOUR_MS, 2);
    assert.equal(countInWindow(w, T0 + HOUR_MS + HOUR_MS / 2, HOUR_MS), 2 + 5);
    assert.equal(countInWindow(w, T0 + 2 * HOUR_MS + 1, HOUR_MS), 1); // 2 * (1 - tiny), rounded down
    assert.equal(countInWindow(w, T0 + 3 * HOUR_MS, HOUR_MS), 0);
  });

  test('a clock that goes backwards hands nothing back', () => {
    const w = addToWindow(undefined, T0 + HOUR_MS, HOUR_MS, 5);
    assert.equal(countInWindow(w, T0 + 10, HOUR_MS), 5);
    assert.equal(addToWindow(w, T0 + 10, HOUR_MS, 1).current, 6);
  });
});

describe('AccountRateLimiter', () => {
  test('messages per hour: the limit, the wording, and the next hours', async () => {
    const l = limiter(3, 0);
    assert.equal(await sendAllowed(l, ALICE, 10), 3);
    const r = await l.checkMessage(ALICE);
    assert.deepEqual(r, {
      code: 450,
      enhanced: '4.7.1',
      lines: [`${ALICE} has reached its limit of 3 messages per hour; try again later`],
    });
    // Another account has its own budget.
    assert.equal(await sendAllowed(l, 'bob@ours.test', 1), 1);
    // Early in the next hour most of the last hour still counts; two hours on, none of it.
    clock = T0 + HOUR_MS + HOUR_MS / 10;
    assert.equal(await sendAllowed(l, ALICE, 10), 1);
    clock = T0 + 3 * HOUR_MS;
    assert.equal(await sendAllowed(l, ALICE, 10), 3);
    await l.close();
  });

  test('recipients per day: counted per message, checked with the transaction so far', async () => {
    const l = limiter(0, 10);
    assert.equal(await l.checkMessage(ALICE), undefined);
    assert.equal(await l.checkRecipient(ALICE, 0), undefined);
    assert.equal(await l.checkRecipient(ALICE, 9), undefined);
    assert.deepEqual(await l.checkRecipient(ALICE, 10), {
      code: 450,
      enhanced: '4.7.1',
      lines: [`${ALICE} has reached its limit of 10 recipients per day; try again later`],
    });
    await l.record(ALICE, 7);
    assert.equal(await l.checkRecipient(ALICE, 2), undefined);
    assert.equal((await l.checkRecipient(ALICE, 3))?.code, 450);
    clock = T0 + 2 * DAY_MS;
    assert.equal(await l.checkRecipient(ALICE, 9), undefined);
    await l.close();
  });

  test('0 is unlimited; per-user overrides win over the defaults and apply at the next MAIL', async () => {
    const l = limiter(2, 0);
    await store.setUserLimits(ALICE, { maxMessagesPerHour: 0 });
    assert.equal(await sendAllowed(l, ALICE, 50), 50);
    assert.equal(await l.checkRecipient(ALICE, 1_000_000), undefined);
    await store.setUserLimits(ALICE, { maxMessagesPerHour: 50, maxRecipientsPerDay: 5 });
    assert.equal((await l.checkMessage(ALICE))?.lines[0], `${ALICE} has reached its limit of 50 messages per hour; try again later`);
    assert.equal((await l.checkRecipient(ALICE, 0))?.code, 450);
    await store.setUserLimits(ALICE, { maxMessagesPerHour: null, maxRecipientsPerDay: null });
    assert.equal((await l.checkMessage(ALICE))?.lines[0], `${ALICE} has reached its limit of 2 messages per hour; try again later`);
    await l.close();
  });

  test('update() sets new default limits and keeps the counts; per-user overrides still win', async () => {
    const l = limiter(10, 0);
    assert.equal(await sendAllowed(l, ALICE, 3), 3);
    l.update({ maxMessagesPerHour: 4, maxRecipientsPerDay: 2 });
    assert.equal(await sendAllowed(l, ALICE, 5), 1);
    assert.equal((await l.checkRecipient('bob@ours.test', 2))?.code, 450);
    await store.setUserLimits(ALICE, { maxMessagesPerHour: 6 });
    assert.equal(await sendAllowed(l, ALICE, 5), 2);
    await l.close();
  });

  test('counters survive closing and reopening the store', async () => {
    const first = limiter(5, 100);
    assert.equal(await sendAllowed(first, ALICE, 4), 4);
    await first.close();
    await store.close();

    store = openSqliteStore(dbPath);
    const second = limiter(5, 100);
    assert.equal(await sendAllowed(second, ALICE, 10), 1);
    assert.equal((await second.checkRecipient(ALICE, 95))?.code, 450);
    await second.close();
    const saved = await store.loadSubmissionCounters(ALICE);
    assert.equal(saved?.messages.current, 5);
    assert.equal(saved?.recipients.current, 5);
  });

  test('counts are written behind without close(), within the flush interval', async () => {
    const l = new AccountRateLimiter(store, {
      maxMessagesPerHour: 10,
      maxRecipientsPerDay: 10,
      now: () => clock,
      flushIntervalMs: 5,
    });
    await l.record(ALICE, 3);
    for (let i = 0; i < 200 && (await store.loadSubmissionCounters(ALICE)) === undefined; i++) await sleep(10);
    assert.equal((await store.loadSubmissionCounters(ALICE))?.recipients.current, 3);
    await l.close();
  });

  test('concurrent first use of an account loses no counts', async () => {
    const l = limiter(100, 0);
    await Promise.all(Array.from({ length: 20 }, () => l.record(ALICE, 1)));
    await l.close();
    assert.equal((await store.loadSubmissionCounters(ALICE))?.messages.current, 20);
  });
});
