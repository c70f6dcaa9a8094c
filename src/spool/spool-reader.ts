// Reading one message out of the spool without opening it: for `postern queue show`, which runs
// beside the server. Spool.open would recover the spool (truncate torn tails, start a segment),
// which only the server may do; this only reads, and copes with segments deleted under it.

import { readFile } from 'node:fs/promises';
import type { Envelope, QueueId } from '../mail/envelope.js';
import { SEGMENT_HEADER_SIZE, decodeMessagePayload, decodeRecord, decodeSegmentHeader } from './spool-record.js';
import { listSegments } from './spool-recovery.js';

/** The newest copy of the message's record, or undefined if the spool has none (any more). */
export async function readSpooledMessage(dir: string, queueId: QueueId): Promise<{ envelope: Envelope; message: Buffer } | undefined> {
  const segments = await listSegments(dir).catch(() => []);
  for (const { path } of segments.reverse()) {
    let buf: Buffer;
    try {
      buf = await readFile(path);
    } catch {
      continue; // deleted since it was listed: its messages are done or copied forward
    }
    const salt = decodeSegmentHeader(buf);
    if (salt === undefined) continue;
    let found: Buffer | undefined;
    let offset = SEGMENT_HEADER_SIZE;
    while (offset < buf.length) {
      const result = decodeRecord(buf, offset, salt);
      if (!result.ok) break;
      if (result.record.kind === 'message' && result.record.queueId === queueId) found = result.record.payload;
      offset += result.record.size;
    }
    if (found) return decodeMessagePayload(found);
  }
  return undefined;
}
