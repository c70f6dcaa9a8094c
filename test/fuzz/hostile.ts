// Generators of hostile input shared by every fuzz target: the octets that break parsers (NUL, bare
// CR and LF, invalid and overlong UTF-8, SASL's "," "=" and ^A separators, very long runs),
// mutations of otherwise valid messages, and how a byte stream is cut into the chunks a socket
// would deliver.

import fc from 'fast-check';

const latin1 = (text: string) => Buffer.from(text, 'latin1');

/** Octet sequences that parsers of text protocols get wrong. */
export const hostileBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(
    latin1('\0'),
    latin1('\r'),
    latin1('\n'),
    latin1('\r\n'),
    latin1('\n.\n'),
    latin1('\r\n.\r\n'),
    latin1('\xff'),
    latin1('\xc0\x80'), // overlong NUL
    latin1('\xed\xa0\x80'), // a UTF-16 surrogate in UTF-8
    latin1('\xf4\x90\x80\x80'), // above U+10FFFF
    latin1('\xe2\x82'), // truncated sequence
    latin1('\x01'),
    latin1('\x01\x01'),
    latin1('\x1b[2J'),
    latin1('\x7f'),
    latin1(','),
    latin1('='),
    latin1('=2C'),
    latin1('=3D'),
    latin1('=ZZ'),
    latin1(' '),
    latin1('\t'),
    latin1('<'),
    latin1('>'),
    latin1('"'),
    latin1('\\'),
    latin1(':'),
    latin1('@'),
    latin1('+'),
    latin1('.'),
    Buffer.from('é'),
    Buffer.from('\u212b'), // Å as ANGSTROM SIGN: NFC changes it
    Buffer.from('\ufeff'),
    Buffer.from('\u202e'),
    Buffer.from('ｅ'),
  ),
  fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)),
  fc.string({ unit: 'binary', maxLength: 6 }).map((s) => Buffer.from(s)),
  fc.constantFrom(300, 1000, 5000).map((n) => Buffer.alloc(n, 0x41)),
);

/** Text that may stand in for any field: short, odd characters, sometimes very long. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 2, arbitrary: hostileBytes.map((b) => b.toString('latin1')) },
  { weight: 1, arbitrary: fc.constantFrom(300, 1000, 13000).map((n) => 'x'.repeat(n)) },
);

/** A decimal number as a client might write one to overflow, underflow or confuse a parser. */
export const hostileNumber: fc.Arbitrary<string> = fc.oneof(
  fc.nat({ max: 20 }).map(String),
  fc.nat().map(String),
  fc.constantFrom('0', '-1', '+1', '01', '1e3', '0x10', '1.5', ' 1', '1 ', '', 'NaN', 'Infinity', '9007199254740993', '99999999999999999999', '١'),
);

export type Mutation =
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Buffer }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'repeat'; readonly at: number; readonly length: number; readonly times: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: hostileBytes }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }), times: fc.integer({ min: 2, max: 50 }) }),
);

function applyMutation(bytes: Buffer, m: Mutation): Buffer {
  const at = bytes.length === 0 ? 0 : m.at % (bytes.length + 1);
  switch (m.kind) {
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
    case 'delete':
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
    case 'truncate':
      return bytes.subarray(0, at);
    case 'flip': {
      if (bytes.length === 0) return bytes;
      const copy = Buffer.from(bytes);
      const i = at % copy.length;
      copy[i] = (copy[i] as number) ^ (1 << m.bit);
      return copy;
    }
    case 'repeat': {
      const piece = bytes.subarray(at, at + m.length);
      return Buffer.concat([bytes.subarray(0, at), ...Array<Buffer>(m.times).fill(piece), bytes.subarray(at + m.length)]);
    }
  }
}

/** One to three hostile edits, for bytes that only exist once the input runs (a SCRAM client-final). */
export const edits: fc.Arbitrary<readonly Mutation[]> = fc.array(mutation, { minLength: 1, maxLength: 3 });

export function applyEdits(bytes: Buffer, ms: readonly Mutation[]): Buffer {
  return ms.reduce(applyMutation, bytes);
}

/** `valid` as it is most of the time; otherwise with one to three hostile edits. */
export function mutated(valid: fc.Arbitrary<Buffer>, weightIntact = 3): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: weightIntact, arbitrary: valid },
    { weight: 1, arbitrary: fc.tuple(valid, edits).map(([b, ms]) => applyEdits(b, ms)) },
  );
}

export const mutatedText = (valid: fc.Arbitrary<string>, weightIntact = 3): fc.Arbitrary<Buffer> =>
  mutated(valid.map((t) => Buffer.from(t)), weightIntact);

/** Where a socket splits a stream (cut points, taken modulo its length: see cutAt in session-feed.ts). */
export const cuts: fc.Arbitrary<readonly number[]> = fc.oneof(
  { weight: 3, arbitrary: fc.constant([]) },
  { weight: 3, arbitrary: fc.array(fc.nat(), { maxLength: 6 }) },
  // Byte by byte, for short inputs: every CRLF and every UTF-8 sequence split.
  { weight: 1, arbitrary: fc.constant(Array.from({ length: 64 }, (_, i) => i + 1)) },
);
