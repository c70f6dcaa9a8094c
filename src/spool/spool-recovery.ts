// Reading the spool back at startup: every message without a done record, and where it lives.
// A crash can leave the last batch half written (the client never got its 250 for it), so a
// damaged record is not fatal: recovery skips to the next record whose checksum holds (see the
// salt in spool-record.ts) and cuts damaged bytes off the end of a segment. Zeros after the
// records are the space the spool filled ahead of them (spool.ts): the end, not damage.

import { open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Envelope, QueueId } from '../mail/envelope.js';
import {
  RECORD_MAGIC,
  SEGMENT_HEADER_SIZE,
  decodeDeliveredPayload,
  decodeMessagePayload,
  decodeRecord,
  decodeSegmentHeader,
  type DecodedRecord,
} from './spool-record.js';

const SEGMENT_NAME = /^seg-(\d{8,})\.log$/;

export function segmentFileName(number: number): string {
  return `seg-${String(number).padStart(8, '0')}.log`;
}

export interface RecoveredSegment {
  readonly number: number;
  readonly path: string;
  readonly salt: number;
  /** End of the last good record: where the file now ends. */
  readonly size: number;
}

export interface RecoveredMessage {
  readonly queueId: QueueId;
  readonly envelope: Envelope;
  /** Size of the spooled message in octets. */
  readonly messageSize: number;
  /** Where the newest copy of the message record is. */
  segment: number;
  offset: number;
  size: number;
  /** Mailboxes that already have their copy. */
  readonly delivered: Set<string>;
}

export interface SpoolContents {
  /** In file order. */
  readonly segments: RecoveredSegment[];
  /** Undelivered messages in the order they were first spooled. */
  readonly messages: Map<QueueId, RecoveredMessage>;
}

export async function listSegments(dir: string): Promise<{ number: number; path: string }[]> {
  const names = await readdir(dir);
  return names
    .map((name) => ({ match: SEGMENT_NAME.exec(name), name }))
    .filter((n) => n.match !== null)
    .map((n) => ({ number: Number(n.match![1]), path: join(dir, n.name) }))
    .sort((a, b) => a.number - b.number);
}

export async function recoverSpool(dir: string, logger: Logger): Promise<SpoolContents> {
  const segments: RecoveredSegment[] = [];
  const messages = new Map<QueueId, RecoveredMessage>();
  for (const { number, path } of await listSegments(dir)) {
    const segment = await recoverSegment(number, path, messages, logger);
    if (segment) segments.push(segment);
  }
  return { segments, messages };
}

async function recoverSegment(
  number: number,
  path: string,
  messages: Map<QueueId, RecoveredMessage>,
  logger: Logger,
): Promise<RecoveredSegment | undefined> {
  const buf = await readFile(path);
  const salt = decodeSegmentHeader(buf);
  if (salt === undefined) {
    if (buf.length < SEGMENT_HEADER_SIZE) {
      // Created but its header never became durable: no record in it was ever acknowledged.
      logger.warn({ path }, 'spool: removing segment with a torn header');
      await unlink(path);
      return undefined;
    }
    logger.error({ path }, 'spool: not a spool segment, moved aside');
    await rename(path, `${path}.corrupt`);
    return undefined;
  }
  let offset = SEGMENT_HEADER_SIZE;
  let end = offset;
  while (offset < buf.length) {
    const result = decodeRecord(buf, offset, salt);
    if (result.ok) {
      applyRecord(number, result.record, messages, logger);
      offset += result.record.size;
      end = offset;
      continue;
    }
    const next = resynchronize(buf, offset + 1, salt);
    if (next === undefined) break;
    logger.error({ path, offset, skipped: next - offset, reason: result.reason }, 'spool: skipped a damaged record');
    offset = next;
  }
  if (end < buf.length) {
    if (!allZero(buf, end)) logger.warn({ path, at: end, dropped: buf.length - end }, 'spool: truncating a torn tail');
    const file = await open(path, 'r+');
    try {
      await file.truncate(end);
      await file.sync();
    } finally {
      await file.close();
    }
  }
  return { number, path, salt, size: end };
}

/** Whether every byte from `from` to the end is zero. */
function allZero(buf: Buffer, from: number): boolean {
  const step = 64 * 1024;
  const zeros = Buffer.alloc(Math.min(step, buf.length - from));
  for (let at = from; at < buf.length; at += step) {
    const part = buf.subarray(at, Math.min(at + step, buf.length));
    if (!part.equals(zeros.subarray(0, part.length))) return false;
  }
  return true;
}

/** The offset of the next intact record after damage, if any. */
function resynchronize(buf: Buffer, from: number, salt: number): number | undefined {
  const magic = Buffer.alloc(4);
  magic.writeUInt32BE(RECORD_MAGIC, 0);
  let at = buf.indexOf(magic, from);
  while (at !== -1) {
    if (decodeRecord(buf, at, salt).ok) return at;
    at = buf.indexOf(magic, at + 1);
  }
  return undefined;
}

function applyRecord(
  segment: number,
  record: DecodedRecord,
  messages: Map<QueueId, RecoveredMessage>,
  logger: Logger,
): void {
  const known = messages.get(record.queueId);
  switch (record.kind) {
    case 'message': {
      if (known) {
        // A copy written by compaction: the newer location wins, progress carries over.
        known.segment = segment;
        known.offset = record.offset;
        known.size = record.size;
        return;
      }
      let decoded: { envelope: Envelope; message: Buffer };
      try {
        decoded = decodeMessagePayload(record.payload);
      } catch (err) {
        logger.error({ err, queueId: record.queueId }, 'spool: unreadable envelope, message skipped');
        return;
      }
      messages.set(record.queueId, {
        queueId: record.queueId,
        envelope: decoded.envelope,
        messageSize: decoded.message.length,
        segment,
        offset: record.offset,
        size: record.size,
        delivered: new Set(),
      });
      return;
    }
    case 'done':
      messages.delete(record.queueId);
      return;
    case 'delivered':
      if (!known) return;
      try {
        for (const mailbox of decodeDeliveredPayload(record.payload)) known.delivered.add(mailbox);
      } catch (err) {
        logger.error({ err, queueId: record.queueId }, 'spool: unreadable delivered record');
      }
      return;
  }
}
