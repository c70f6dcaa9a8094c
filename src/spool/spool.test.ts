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
async function reopen(dir: string, maxSegmentBytes?: number, holdRecordsMs = 60_000) {
  const result = await Spool.open({ dir, logger, compactIntervalMs: 0, maxSegmentBytes, holdRecordsMs });
  opened.push(result.spool);
  return result;
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
    const size = statSync(file).size;
    truncateSync(file, size - 100); // the crash hit in the middle of the third record

    const after = await reopen(dir);
    assert.deepEqual(after.recovered.map((m) => m.queueId), queue.slice(0, 2));
    assert.ok(statSync(file).size < size - 100, 'the torn bytes are truncated away');
    const later = ids.next();
    await after.spool.append(later, envelope, testMessage(5));

    const third = await reopen(dir);
    assert.deepEqual(third.recovered.map((m) => m.queueId), [queue[0], queue[1], later]);
    await third.spool.close();
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
