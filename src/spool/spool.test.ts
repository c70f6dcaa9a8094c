import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Spool } from './spool.js';
import { QueueIdGenerator } from '../mail/queue-id.js';
import { testEnvelope, testMessage } from '../../test/support/test-envelope.js';
import { encodeMessagePayload, encodeRecord } from './spool-record.js';

const logger = pino({ level: 'silent' });
const ids = new QueueIdGenerator();
const roots: string[] = [];
const opened: Spool[] = [];
after(async () => {
  // Instances left open stand for crashed processes; close their files only now.
  for (const spool of opened) await spool.close();
  roots.forEach((r) => rmSync(r, { recursive: true, force: true }));
});

function spoolDir(): string {
  const root = mkdtempSync(join(tmpdir(), 'postern-spool-'));
  roots.push(root);
  return join(root, 'spool');
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('seg-')).sort();
}

const envelope = testEnvelope([{ address: 'alice@example.test', mailboxes: ['alice@example.test'] }]);

/** Opens without closing the previous instance: what a restart after a crash sees. */
async function reopen(dir: string, maxSegmentBytes?: number, holdRecordsMs = 60_000, prefillBytes?: number, log = logger) {
  const result = await Spool.open({ dir, logger: log, compactIntervalMs: 0, maxSegmentBytes, holdRecordsMs, prefillBytes });
  opened.push(result.spool);
  return result;
}

/** Where a segment's records end: after them come only the zeros filled ahead (records end in message text). */
function recordsEnd(file: string): number {
  const bytes = readFileSync(file);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end;
}

/** A logger that keeps its warnings and errors, to see what recovery complained about. */
function recordingLogger(): { log: typeof logger; complaints: string[] } {
  const complaints: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => complaints.push(String((JSON.parse(line) as { msg: unknown }).msg)) });
  return { log, complaints };
}

describe('Spool', () => {
  test('an appended message survives a crash and reads back byte for byte', async () => {
    const dir = spoolDir();
    const { spool, recovered } = await reopen(dir);
    assert.equal(recovered.length, 0);
    const id = ids.next();
    const message = testMessage(1);
    await spool.append(id, envelope, message);

    const after = await reopen(dir);
    assert.deepEqual(after.recovered.map((m) => m.queueId), [id]);
    assert.deepEqual(after.recovered[0]!.envelope, envelope);
    const back = await after.spool.read(id);
    assert.ok(back.message.equals(message));
    await after.spool.close();
  });

  test('done records cost no fsync of their own: the next message or flush() makes them durable', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const first = ids.next();
    await spool.append(first, envelope, testMessage(1));
    const syncs = spool.stats.syncs;
    spool.markDelivered(first, ['alice@example.test']);
    spool.markDone(first);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(spool.stats.syncs, syncs, 'no fsync for the done record alone');
    await spool.flush();
    assert.equal(spool.stats.syncs, syncs + 1, 'flush() writes what was held');
    await spool.flush();
    assert.equal(spool.stats.syncs, syncs + 1, 'nothing left to sync');
    const after = await reopen(dir);
    assert.deepEqual(after.recovered, []);
  });

  test('done records no batch carries get a write of their own within the hold', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir, undefined, 10);
    const id = ids.next();
    await spool.append(id, envelope, testMessage(1));
    const syncs = spool.stats.syncs;
    spool.markDone(id);
    while (spool.stats.syncs === syncs) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(spool.stats.syncs, syncs + 1, 'one write for the held record');
    assert.deepEqual((await reopen(dir)).recovered, [], 'the done record is durable without a flush');
  });

  test('messages with a durable done record are not recovered; the rest come back in order', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const queue = [ids.next(), ids.next(), ids.next()];
    for (const id of queue) await spool.append(id, envelope, testMessage(2));
    spool.markDone(queue[1]!);
    await spool.flush();

    const after = await reopen(dir);
    assert.deepEqual(after.recovered.map((m) => m.queueId), [queue[0], queue[2]]);
    await after.spool.close();
  });

  test('delivered mailboxes are remembered across a restart', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const id = ids.next();
    await spool.append(id, envelope, testMessage(3));
    spool.markDelivered(id, ['alice@example.test']);
    await spool.flush();
    const after = await reopen(dir);
    assert.deepEqual([...after.recovered[0]!.delivered], ['alice@example.test']);
    await after.spool.close();
  });

  test('a torn last record is dropped and cut off; earlier records survive and appends go on', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const queue = [ids.next(), ids.next(), ids.next()];
    for (const id of queue) await spool.append(id, envelope, testMessage(4));
    const file = join(dir, segmentFiles(dir).at(-1)!);
    const size = recordsEnd(file);
    truncateSync(file, size - 100); // the crash hit in the middle of the third record, past the zero-filled space
    assert.equal(statSync(file).size, size - 100);

    const after = await reopen(dir);
    assert.deepEqual(after.recovered.map((m) => m.queueId), queue.slice(0, 2));
    assert.ok(statSync(file).size < size - 100, 'the torn bytes are truncated away');
    const later = ids.next();
    await after.spool.append(later, envelope, testMessage(5));

    const third = await reopen(dir);
    assert.deepEqual(third.recovered.map((m) => m.queueId), [queue[0], queue[1], later]);
    await third.spool.close();
  });

  test('a record torn inside the zero-filled space is dropped, with a warning; the zeros after records are not damage', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const queue = [ids.next(), ids.next(), ids.next()];
    for (const id of queue) await spool.append(id, envelope, testMessage(6));
    const file = join(dir, segmentFiles(dir).at(-1)!);
    const end = recordsEnd(file);
    const bytes = readFileSync(file);
    assert.ok(bytes.length > end, 'the segment is filled ahead of its records');
    bytes.fill(0, end - 100, end); // the crash left the last 100 bytes of the third record unwritten
    writeFileSync(file, bytes);

    const { log, complaints } = recordingLogger();
    const after = await reopen(dir, undefined, 60_000, undefined, log);
    assert.deepEqual(after.recovered.map((m) => m.queueId), queue.slice(0, 2));
    assert.deepEqual(complaints, ['spool: truncating a torn tail']);
    assert.ok(statSync(file).size < end - 100, 'the torn record and the zeros are cut off');
    await after.spool.close();
  });

  test('records overwrite the zero-filled space, fills go on ahead of them, and a restart finds them all without complaint', async () => {
    const dir = spoolDir();
    // 8 KiB fills and ~1.1 KiB records: several fills, some of them racing the batches.
    const { spool } = await reopen(dir, undefined, 60_000, 8192);
    const file = join(dir, segmentFiles(dir).at(-1)!);
    assert.equal(statSync(file).size, 16 + 8192, 'header and the first fill');
    const first = ids.next();
    await spool.append(first, envelope, testMessage(7));
    assert.equal(statSync(file).size, 16 + 8192, 'the first record went into the filled space');
    const queue = [first];
    for (let round = 0; round < 10; round++) {
      const batch = Array.from({ length: 8 }, () => ids.next());
      await Promise.all(batch.map((id, i) => spool.append(id, envelope, testMessage(100 + round * 8 + i))));
      queue.push(...batch);
    }
    // The last fill may still be running in the background: it ends with zeros ahead again.
    for (let waited = 0; statSync(file).size <= recordsEnd(file); waited += 10) {
      assert.ok(waited < 5000, 'zeros ahead of the records');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    const { log, complaints } = recordingLogger();
    const after = await reopen(dir, undefined, 60_000, 8192, log);
    assert.deepEqual(after.recovered.map((m) => m.queueId), queue);
    for (const [i, id] of queue.slice(1).entries()) assert.ok((await after.spool.read(id)).message.equals(testMessage(100 + i)));
    assert.deepEqual(complaints, []);
    assert.equal(statSync(file).size, recordsEnd(file), 'recovery gives the zeros back');
    await after.spool.close();
  });

  test('batches of large messages append: no fill writes their bytes twice', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir, undefined, 60_000, 8192);
    const file = join(dir, segmentFiles(dir).at(-1)!);
    const big = Buffer.alloc(100 * 1024, 'y');
    for (let i = 0; i < 40; i++) await spool.append(ids.next(), envelope, big);
    await new Promise((resolve) => setTimeout(resolve, 100)); // a fill still running would end now
    assert.equal(statSync(file).size, recordsEnd(file), 'the last batches were not filled ahead');
    await spool.close();
  });

  test('a segment closed cleanly ends with its last record', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    await spool.append(ids.next(), envelope, testMessage(8));
    const file = join(dir, segmentFiles(dir).at(-1)!);
    assert.ok(statSync(file).size > recordsEnd(file));
    await spool.close();
    assert.equal(statSync(file).size, recordsEnd(file));
  });

  test('a record with a bad checksum is skipped, the records after it are kept', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const queue = [ids.next(), ids.next(), ids.next()];
    const messages = queue.map((_, i) => testMessage(10 + i));
    for (const [i, id] of queue.entries()) await spool.append(id, envelope, messages[i]!);
    const file = join(dir, segmentFiles(dir).at(-1)!);
    const bytes = readFileSync(file);
    const at = bytes.indexOf('message 11 ');
    assert.ok(at > 0);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x20, at);
    writeFileSync(file, bytes);

    const after = await reopen(dir);
    assert.deepEqual(after.recovered.map((m) => m.queueId), [queue[0], queue[2]]);
    assert.ok((await after.spool.read(queue[2]!)).message.equals(messages[2]!));
    await after.spool.close();
  });

  test('a record forged inside a message body is not taken for a real one when resynchronizing', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const forgedId = ids.next();
    const forged = Buffer.concat(
      encodeRecord(0, 'message', forgedId, encodeMessagePayload(testEnvelope([{ address: 'x@evil.test', mailboxes: ['root@example.test'] }]), Buffer.from('x'))),
    );
    const id = ids.next();
    await spool.append(id, envelope, Buffer.concat([Buffer.from('Subject: hi\r\n\r\n'), forged]));
    const file = join(dir, segmentFiles(dir).at(-1)!);
    const bytes = readFileSync(file);
    bytes.writeUInt8(bytes.readUInt8(16 + 12) ^ 0xff, 16 + 12); // break the real record's checksum so recovery scans inside it
    writeFileSync(file, bytes);

    const after = await reopen(dir);
    assert.deepEqual(after.recovered, []);
    await after.spool.close();
  });

  test('concurrent appends share fsyncs (group commit) and all are durable', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir);
    const queue = Array.from({ length: 200 }, () => ids.next());
    await Promise.all(queue.map((id, i) => spool.append(id, envelope, testMessage(i))));
    assert.equal(spool.stats.appended, 200);
    assert.ok(spool.stats.syncs < 200, `expected fewer fsyncs than messages, got ${spool.stats.syncs}`);

    const after = await reopen(dir);
    assert.deepEqual(after.recovered.map((m) => m.queueId), queue);
    await after.spool.close();
  });

  test('finished segments are deleted, and only oldest first', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir, 4096);
    const pinned = ids.next();
    await spool.append(pinned, envelope, testMessage(0, 3000)); // keeps the first segment alive
    const rest: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const id = ids.next();
      rest.push(id);
      await spool.append(id, envelope, testMessage(i, 3000));
    }
    const before = segmentFiles(dir).length;
    assert.ok(before >= 4, `expected several segments, got ${before}`);
    rest.forEach((id) => spool.markDone(id));
    await spool.flush();
    // The first segment still holds an unfinished message, so nothing after it may go.
    assert.equal(segmentFiles(dir).length, before);

    const restarted = await reopen(dir, 4096);
    assert.deepEqual(restarted.recovered.map((m) => m.queueId), [pinned]);
    restarted.spool.markDone(pinned);
    await restarted.spool.flush();
    assert.equal(segmentFiles(dir).length, 1, 'every segment but the current one is deleted');
    assert.equal((await reopen(dir)).recovered.length, 0);
    await spool.close();
    await restarted.spool.close();
  });

  test('compaction moves lingering messages forward so old segments can go', async () => {
    const dir = spoolDir();
    const { spool } = await reopen(dir, 4096);
    const lingering = ids.next();
    const message = testMessage(0, 3000);
    await spool.append(lingering, envelope, message);
    spool.markDelivered(lingering, ['alice@example.test']);
    for (let i = 1; i <= 4; i++) {
      const id = ids.next();
      await spool.append(id, envelope, testMessage(i, 3000));
      spool.markDone(id);
    }
    await spool.flush();
    assert.ok(segmentFiles(dir).length >= 3);

    assert.equal(await spool.compact(0), 1);
    await spool.flush();
    assert.equal(spool.stats.relocated, 1);
    assert.equal(segmentFiles(dir).length, 1);
    assert.ok((await spool.read(lingering)).message.equals(message));

    const after = await reopen(dir);
    assert.deepEqual(after.recovered.map((m) => m.queueId), [lingering]);
    assert.deepEqual([...after.recovered[0]!.delivered], ['alice@example.test']);
    assert.ok((await after.spool.read(lingering)).message.equals(message));
    await spool.close();
    await after.spool.close();
  });
});
