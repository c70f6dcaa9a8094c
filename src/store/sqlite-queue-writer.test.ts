import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteQueueWriter, type QueueWriteFallback } from './sqlite-queue-writer.js';
import { openSqliteStore } from './sqlite-store.js';
import type { QueueEntry } from './store.js';

const ENTRY: QueueEntry = { queueId: 'Q1', sender: '', recipients: ['r@x.test'], size: 1, receivedAt: 1, state: 'active' };

function recordingFallback(): QueueWriteFallback & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    insert: (entries) => void calls.push(`insert ${entries.map((e) => e.queueId).join(',')}`),
    remove: (ids) => void calls.push(`remove ${ids.join(',')}`),
  };
}

describe('SqliteQueueWriter', () => {
  test('a thread that cannot open its database rejects the call it had; later calls run on the fallback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-queue-writer-'));
    try {
      const fallback = recordingFallback();
      // A directory where the database file should be: the thread fails as it starts.
      const writer = new SqliteQueueWriter(dir, fallback);
      await assert.rejects(writer.insert([ENTRY]));
      await writer.insert([ENTRY]);
      await writer.remove(['Q1']);
      assert.deepEqual(fallback.calls, ['insert Q1', 'remove Q1']);
      await writer.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a write the thread refuses rejects with its error, and the thread writes the next one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-queue-writer-'));
    const path = join(dir, 'postern.db');
    try {
      await openSqliteStore(path).close(); // the store's tables
      const fallback = recordingFallback();
      const writer = new SqliteQueueWriter(path, fallback);
      // The table's CHECK refuses a state that is not one of the three.
      const bogus = { ...ENTRY, state: 'bogus' } as unknown as QueueEntry;
      await assert.rejects(writer.insert([bogus]), /CHECK constraint failed/);
      await writer.insert([ENTRY]);
      await writer.close();
      assert.deepEqual(fallback.calls, []);
      const store = openSqliteStore(path);
      assert.deepEqual((await store.queueList()).map((e) => e.queueId), ['Q1']);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
