// The CRAM-MD5 secret (RFC 2195): the HMAC-MD5 key state, as Dovecot and Cyrus keep it. HMAC-MD5
// (RFC 2104) hashes the block K XOR ipad first and K XOR opad last; the MD5 states after those two
// blocks are all the server needs to answer any challenge. They do not reveal the password itself
// (which may be reused elsewhere), but they ARE password-equivalent for CRAM-MD5: whoever steals
// them can log in with CRAM-MD5. Hence CRAM-MD5 is opt-in ([auth] cram_md5).
// node:crypto cannot resume an MD5 from a midway state, so the compression function is here.

import { createHash } from 'node:crypto';

/** 32 bytes: the inner MD5 state, then the outer one (four little-endian words each). */
export type CramMd5Secret = Buffer;

const BLOCK = 64;
const IPAD = 0x36;
const OPAD = 0x5c;
const MD5_IV = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

export function deriveCramMd5Secret(password: string): CramMd5Secret {
  // RFC 2104 section 2: keys longer than the block are hashed first.
  let key = Buffer.from(password, 'utf8');
  if (key.length > BLOCK) key = createHash('md5').update(key).digest();
  const padded = Buffer.alloc(BLOCK);
  key.copy(padded);
  const inner = padded.map((b) => b ^ IPAD);
  const outer = padded.map((b) => b ^ OPAD);
  return Buffer.concat([stateBytes(compress(MD5_IV, inner, 0)), stateBytes(compress(MD5_IV, outer, 0))]);
}

/** HMAC-MD5(password, message), computed from the stored key state. */
export function cramMd5Digest(secret: CramMd5Secret, message: Buffer): Buffer {
  const inner = finishMd5(readState(secret, 0), message);
  return finishMd5(readState(secret, 16), inner);
}

export function isCramMd5Secret(bytes: Buffer): boolean {
  return bytes.length === 32;
}

/** MD5 of (one already-processed 64-byte block || data), resumed from that block's state. */
function finishMd5(state: readonly number[], data: Buffer): Buffer {
  const totalBits = BigInt(BLOCK + data.length) * 8n;
  const padLength = (BLOCK - ((data.length + 9) % BLOCK)) % BLOCK;
  const tail = Buffer.alloc(data.length + 9 + padLength);
  data.copy(tail);
  tail[data.length] = 0x80;
  tail.writeBigUInt64LE(totalBits, tail.length - 8);
  let s = state;
  for (let offset = 0; offset < tail.length; offset += BLOCK) s = compress(s, tail, offset);
  return stateBytes(s);
}

const SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const SINES = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);

/** The MD5 compression function (RFC 1321 section 3.4) on one 64-byte block. */
function compress(state: readonly number[], block: Buffer | Uint8Array, offset: number): number[] {
  const words = Buffer.from(block.buffer, block.byteOffset + offset, BLOCK);
  let [a, b, c, d] = state as [number, number, number, number];
  for (let i = 0; i < 64; i++) {
    const round = i >> 4;
    let f: number;
    let g: number;
    switch (round) {
      case 0:
        f = (b & c) | (~b & d);
        g = i;
        break;
      case 1:
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
        break;
      case 2:
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
        break;
      default:
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
    }
    // Fixed RFC 1321 tables indexed within their length: the casts keep this inner loop lean.
    const shift = SHIFTS[round * 4 + (i % 4)] as number;
    const x = (a + f + (SINES[i] as number) + words.readInt32LE(4 * g)) | 0;
    a = d;
    d = c;
    c = b;
    b = (b + ((x << shift) | (x >>> (32 - shift)))) | 0;
  }
  return [(state[0]! + a) | 0, (state[1]! + b) | 0, (state[2]! + c) | 0, (state[3]! + d) | 0];
}

function stateBytes(state: readonly number[]): Buffer {
  const out = Buffer.alloc(16);
  state.forEach((word, i) => out.writeInt32LE(word | 0, 4 * i));
  return out;
}

function readState(secret: Buffer, offset: number): number[] {
  return [0, 1, 2, 3].map((i) => secret.readInt32LE(offset + 4 * i));
}
