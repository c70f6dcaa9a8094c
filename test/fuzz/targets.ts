// The fuzz targets, and each one's share of a run: the SMTP session, the SASL decoders on their
// own (the fastest, so the largest share), and the POP3 session.

import { createFuzzWorld, type FuzzWorld } from './fuzz-world.js';
import { pop3Target } from './pop3-target.js';
import { saslTarget } from './sasl-target.js';
import { smtpTarget } from './smtp-target.js';
import type { FuzzTarget } from './target.js';

export interface WeightedTarget {
  readonly target: FuzzTarget<unknown>;
  /** Fraction of the total inputs this target gets. */
  readonly share: number;
}

export function createTargets(world: FuzzWorld = createFuzzWorld()): { world: FuzzWorld; targets: WeightedTarget[] } {
  const targets: WeightedTarget[] = [
    { target: smtpTarget(world) as FuzzTarget<unknown>, share: 0.35 },
    { target: saslTarget(world) as FuzzTarget<unknown>, share: 0.5 },
    { target: pop3Target(world) as FuzzTarget<unknown>, share: 0.15 },
  ];
  return { world, targets };
}
