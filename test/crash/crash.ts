// `npm run crash`: crash-run.ts with 20 SIGKILLs at random moments under load (CRASH_KILLS), from
// CRASH_CONNECTIONS clients, the server up 0.5-3 s between kills (seeded by CRASH_SEED, so a run
// can be replayed); before half the kills the load pauses for up to CRASH_LULL_MS (300; 0: never). Prints messages answered 250, delivered, lost and duplicated, and exits 1 if
// any message was lost or delivered twice.

import { crashRun, describeResult } from './crash-run.js';
import { positiveFromEnv } from '../support/env-number.js';

const env = process.env;


const kills = positiveFromEnv('CRASH_KILLS', 20);
const connections = positiveFromEnv('CRASH_CONNECTIONS', 16);
const lullMs = env.CRASH_LULL_MS === '0' ? 0 : positiveFromEnv('CRASH_LULL_MS', 300);
const seed = positiveFromEnv('CRASH_SEED', Math.floor(Math.random() * 1_000_000) + 1);
console.log(`crash: ${kills} SIGKILLs, ${connections} connections, CRASH_LULL_MS=${lullMs}, CRASH_SEED=${seed}`);
const result = await crashRun({
  kills,
  connections,
  minUpMs: 500,
  maxUpMs: 3000,
  lullMs,
  seed,
  drainTimeoutMs: 300_000,
  progress: (line) => console.log(`  ${line}`),
});
console.log(describeResult(result));
for (const example of result.examples) console.log(`  ${example}`);
process.exit(result.lost === 0 && result.duplicated === 0 ? 0 : 1);
