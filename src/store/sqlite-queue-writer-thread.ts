// The thread behind sqlite-queue-writer.ts: its own connection to the store's file, the same
// settings as the main one (sqlite-store.ts; the file is already migrated), and the same queue
// tables code, one request at a time.

import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SqliteQueueTables } from './sqlite-queue.js';
import type { QueueWriteReply, QueueWriteRequest } from './sqlite-queue-writer.js';

const { path } = workerData as { path: string };
const db = new Database(path);
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
db.pragma('foreign_keys = ON');
const tables = new SqliteQueueTables(db);

parentPort!.on('message', (request: QueueWriteRequest) => {
  let reply: QueueWriteReply;
  try {
    if (request.op === 'insert') tables.insert(request.entries);
    else tables.remove(request.queueIds);
    reply = { id: request.id };
  } catch (err) {
    reply = { id: request.id, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort!.postMessage(reply);
});
