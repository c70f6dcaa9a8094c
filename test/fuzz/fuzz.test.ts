// A short seeded run of every fuzz target (the long one is `npm run fuzz`, test/fuzz/fuzz.ts), and
// the flood measurements with a few MiB each. The seeds are fixed: a failure here names the seed
// and path that replay it (FUZZ_REPLAY=target:seed:path npm run fuzz).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FLOODS, flood } from './flood.js';
import { createTargets } from './targets.js';

const { world, targets } = createTargets();
after(() => world.close());

/** Inputs per target here: enough to pass every generator's branches, a few seconds in all. */
const RUNS: Record<string, number> = { smtp: 300, sasl: 1500, pop3: 300 };

describe('fuzz: a short seeded run of each target', () => {
  for (const { target } of targets) {
    test(`${target.name}: ${RUNS[target.name]} inputs`, async () => {
      await fc.assert(
        fc.asyncProperty(target.input, (input) => target.check(input)),
        { seed: 20_260_112, numRuns: RUNS[target.name] ?? 100 },
      );
    });
  }
});

describe('fuzz: memory under a flood of 8 MiB', () => {
  for (const shape of FLOODS) {
    test(shape.name, async () => {
      const { retained } = await flood(world, shape, 8);
      assert.ok(retained < 4 * 1024 * 1024, `the session holds ${(retained / 1048576).toFixed(1)} MiB after 8 MiB`);
    });
  }
});
