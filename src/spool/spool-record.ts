// The on-disk format of spool segments. A segment is a header followed by records:
//
//   segment header (16 bytes): "PSTSPOOL" | u32 version | u32 salt
//   record header  (16 bytes): u32 magic "PSTR" | u8 kind | u8 id length | u16 zero
//                              | u32 payload length | u32 CRC-32
//   then the queue id (ASCII) and the payload.
//
// The CRC covers the first 12 header bytes, the id and the payload, and starts from the segment's
// random salt. The salt matters when recovery resynchronizes after a damaged record by scanning
// for the next magic: a message body is client-controlled and could contain a forged record, but
// the client cannot know the salt, so a forged record fails its checksum.

import { crc32 } from 'node:zlib';
import type { Envelope, QueueId } from '../mail/envelope.js';
import { isQueueId } from '../mail/queue-id.js';

export const SEGMENT_MAGIC = Buffer.from('PSTSPOOL', 'ascii');
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_SIZE = 16;
export const RECORD_MAGIC = 0x50535452; // "PSTR"
export const RECORD_HEADER_SIZE = 16;
/** Sanity bound on one payload: far above the largest message the server accepts. */
export const MAX_PAYLOAD = 1 << 30;

/**
 * message: the envelope and the message (with our Received header).
 * done: every recipient is finished; the message can be forgotten.
 * delivered: these mailboxes have their copy; do not deliver to them again after a restart.
 */
export type RecordKind = 'message' | 'done' | 'delivered';

const KIND_CODES: Record<RecordKind, number> = { message: 1, done: 2, delivered: 3 };

function kindOf(code: number): RecordKind | undefined {
  switch (code) {
    case 1:
      return 'message';
    case 2:
      return 'done';
    case 3:
      return 'delivered';
    default:
      return undefined;
  }
}

export function encodeSegmentHeader(salt: number): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_SIZE);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt32BE(SEGMENT_VERSION, 8);
  b.writeUInt32BE(salt >>> 0, 12);
  return b;
}

/** The salt of a segment, or undefined if the header is missing or not ours. */
export function decodeSegmentHeader(b: Buffer): number | undefined {
  if (b.length < SEGMENT_HEADER_SIZE) return undefined;
  if (!b.subarray(0, 8).equals(SEGMENT_MAGIC)) return undefined;
  if (b.readUInt32BE(8) !== SEGMENT_VERSION) return undefined;
  return b.readUInt32BE(12);
}

/**
 * Encodes a record as buffers for one writev: header+id in one, then the payload parts as given
 * (so a large message body is never copied).
 *
 * The header comes from Node's buffer pool, uninitialized, with every byte written below: a
 * zero-filled Buffer.alloc is a new allocation of its own, 0.5 us each, twice per message.
 */
export function encodeRecord(salt: number, kind: RecordKind, queueId: QueueId, payload: readonly Buffer[]): Buffer[] {
  let length = 0;
  for (const p of payload) length += p.length;
  const idStart = RECORD_HEADER_SIZE;
  const head = Buffer.allocUnsafe(idStart + queueId.length);
  head.writeUInt32BE(RECORD_MAGIC, 0);
  head.writeUInt8(KIND_CODES[kind], 4);
  head.writeUInt8(queueId.length, 5);
  head.writeUInt16BE(0, 6);
  head.writeUInt32BE(length, 8);
  // A queue id is ASCII (isQueueId), so its length is its byte count.
  head.write(queueId, idStart, 'latin1');
  let crc = crc32(head.subarray(0, 12), salt);
  crc = crc32(head.subarray(idStart), crc);
  for (const p of payload) crc = crc32(p, crc);
  head.writeUInt32BE(crc, 12);
  return [head, ...payload];
}

export interface DecodedRecord {
  readonly kind: RecordKind;
  readonly queueId: QueueId;
  /** Offset of the record in the buffer it was decoded from. */
  readonly offset: number;
  /** Total size: header, id and payload. */
  readonly size: number;
  readonly payloadOffset: number;
  readonly payload: Buffer;
}

export type DecodeResult =
  | { readonly ok: true; readonly record: DecodedRecord }
  /** Not enough bytes for the record the header announces (a torn write, or the end). */
  | { readonly ok: false; readonly reason: 'short' }
  | { readonly ok: false; readonly reason: 'bad-magic' | 'bad-header' | 'bad-checksum' };

/** Decodes the record at `offset`; never throws on bad input. */
export function decodeRecord(buf: Buffer, offset: number, salt: number): DecodeResult {
  if (offset + RECORD_HEADER_SIZE > buf.length) return { ok: false, reason: 'short' };
  if (buf.readUInt32BE(offset) !== RECORD_MAGIC) return { ok: false, reason: 'bad-magic' };
  const kind = kindOf(buf.readUInt8(offset + 4));
  const idLength = buf.readUInt8(offset + 5);
  const length = buf.readUInt32BE(offset + 8);
  if (kind === undefined || idLength < 12 || idLength > 64 || buf.readUInt16BE(offset + 6) !== 0 || length > MAX_PAYLOAD) {
    return { ok: false, reason: 'bad-header' };
  }
  const idStart = offset + RECORD_HEADER_SIZE;
  const payloadOffset = idStart + idLength;
  const end = payloadOffset + length;
  if (end > buf.length) return { ok: false, reason: 'short' };
  let crc = crc32(buf.subarray(offset, offset + 12), salt);
  crc = crc32(buf.subarray(idStart, end), crc);
  if (crc !== buf.readUInt32BE(offset + 12)) return { ok: false, reason: 'bad-checksum' };
  const queueId = buf.toString('latin1', idStart, payloadOffset);
  if (!isQueueId(queueId)) return { ok: false, reason: 'bad-header' };
  const payload = buf.subarray(payloadOffset, end);
  return { ok: true, record: { kind, queueId, offset, size: end - offset, payloadOffset, payload } };
}

/** Payload of a message record: u32 envelope length | envelope JSON | message. */
export function encodeMessagePayload(envelope: Envelope, message: Buffer): Buffer[] {
  const json = JSON.stringify(envelope);
  const jsonLength = Buffer.byteLength(json, 'utf8');
  // Uninitialized, from the pool: the length and the JSON fill all of it.
  const prefix = Buffer.allocUnsafe(4 + jsonLength);
  prefix.writeUInt32BE(jsonLength, 0);
  prefix.write(json, 4, 'utf8');
  return [prefix, message];
}

export function decodeMessagePayload(payload: Buffer): { envelope: Envelope; message: Buffer } {
  if (payload.length < 4) throw new Error('message record too short');
  const jsonLength = payload.readUInt32BE(0);
  if (4 + jsonLength > payload.length) throw new Error('message record envelope overruns payload');
  const envelope = JSON.parse(payload.toString('utf8', 4, 4 + jsonLength)) as Envelope;
  return { envelope, message: payload.subarray(4 + jsonLength) };
}

/** Payload of a delivered record: the mailbox addresses, JSON. */
export function encodeDeliveredPayload(mailboxes: readonly string[]): Buffer[] {
  return [Buffer.from(JSON.stringify(mailboxes), 'utf8')];
}

export function decodeDeliveredPayload(payload: Buffer): string[] {
  const value: unknown = JSON.parse(payload.toString('utf8'));
  if (!isStringArray(value)) throw new Error('bad delivered record');
  return value;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}
