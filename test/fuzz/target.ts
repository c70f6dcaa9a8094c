// What a fuzz target is: a generator of inputs and a check that throws when a property fails. The
// same targets run briefly inside `npm test` (fuzz.test.ts) and a million times in `npm run fuzz`
// (fuzz.ts), always from a fixed seed, so a failure is replayed by its seed and path.

import type fc from 'fast-check';

export interface FuzzTarget<T> {
  readonly name: string;
  readonly input: fc.Arbitrary<T>;
  /** Feeds one input to the machine; rejects (an assertion) when a property does not hold. */
  check(input: T): Promise<void>;
}
