// `npm run fuzz`: the fuzz targets (targets.ts) for FUZZ_RUNS inputs in all (1,000,000 unless
// set), shared out by each target's share, in batches of FUZZ_BATCH inputs from seeds derived from
// FUZZ_SEED; then the floods (flood.ts) with 32 MiB each. It prints inputs and inputs/s per target
// and the memory figures, and exits 1 on the first failure, naming how to replay it:
//
//   FUZZ_REPLAY=<target>:<seed>:<path> npm run fuzz    replays one failing input, verbosely
//   FUZZ_ONLY=smtp,pop3                                 runs only these targets
//
// No crash: a property failure, an exception out of a machine or an unhandled rejection fails the
// run. No hang: a machine that stops returning (a settle() that never ends, or a synchronous loop)
// is caught by a watchdog thread, which names the seed and the input's path before it kills the
// process. No unbounded memory: after every batch the heap is measured after a full collection,
// and the run fails if it keeps growing (the lowest figure of the last third of the batches above
// the lowest of the first third by more than FUZZ_HEAP_SLACK_MB, 16 by default).

import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { FLOODS, collectGarbage, flood } from './flood.js';
import { createTargets } from './targets.js';
import { positiveFromEnv } from '../support/env-number.js';

const MiB = 1024 * 1024;
const env = process.env;
const totalRuns = positiveFromEnv('FUZZ_RUNS', 1_000_000);
const batchSize = positiveFromEnv('FUZZ_BATCH', 10_000);
const baseSeed = positiveFromEnv('FUZZ_SEED', 5321);
const hangSeconds = positiveFromEnv('FUZZ_HANG_SECONDS', 120);
const heapSlack = positiveFromEnv('FUZZ_HEAP_SLACK_MB', 16) * MiB;
const floodMiB = positiveFromEnv('FUZZ_FLOOD_MB', 32);
const only = env.FUZZ_ONLY?.split(',').filter((n) => n !== '');


/** Shared with the watchdog: a heartbeat, then which target, batch seed and input is running. */
const progress = new Int32Array(new SharedArrayBuffer(4 * 4));
const HEARTBEAT = 0;
const TARGET = 1;
const SEED = 2;
const INPUT = 3;

function startWatchdog(names: readonly string[]): void {
  // A worker thread keeps time while the main thread may be stuck in a synchronous loop; it stops
  // the whole process, since nothing on the main thread would run again.
  const watchdog = new Worker(
    `const { workerData } = require('node:worker_threads');
     const { writeSync } = require('node:fs');
     const progress = workerData.progress;
     let last = -1, since = Date.now();
     setInterval(() => {
       const beat = Atomics.load(progress, 0);
       if (beat !== last) { last = beat; since = Date.now(); return; }
       if (Date.now() - since < workerData.hangSeconds * 1000) return;
       const target = workerData.names[Atomics.load(progress, 1)];
       const seed = Atomics.load(progress, 2), input = Atomics.load(progress, 3);
       writeSync(2, 'HANG: ' + target + ' made no progress for ' + workerData.hangSeconds + ' s at input ' + input +
         ' of the batch with seed ' + seed + '\\nreplay: FUZZ_REPLAY=' + target + ':' + seed + ':' + input + ' npm run fuzz\\n');
       process.kill(process.pid, 'SIGKILL');
     }, 1000);`,
    { eval: true, workerData: { progress, names, hangSeconds } },
  );
  watchdog.unref();
}

function heapNow(): { heap: number; rss: number } {
  collectGarbage();
  collectGarbage();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

const mib = (bytes: number) => (bytes / MiB).toFixed(1);

async function main(): Promise<number> {
  const { world, targets } = createTargets();
  process.on('unhandledRejection', (err) => {
    console.error('FAIL: an unhandled rejection', err);
    process.exit(1);
  });
  try {
    const names = targets.map((t) => t.target.name);
    if (env.FUZZ_REPLAY) return await replay(targets.map((t) => t.target), env.FUZZ_REPLAY);
    startWatchdog(names);
    const chosen = targets.filter((t) => only === undefined || only.includes(t.target.name));
    if (chosen.length === 0) {
      console.error(`FUZZ_ONLY=${env.FUZZ_ONLY} names no target; the targets are ${names.join(', ')}`);
      return 1;
    }
    const shares = chosen.reduce((sum, t) => sum + t.share, 0);
    console.log(`fuzz: ${totalRuns} inputs in batches of ${batchSize}, base seed ${baseSeed}`);
    const rows: string[] = [];
    for (const { target, share } of chosen) {
      const runs = Math.round((totalRuns * share) / shares);
      const index = names.indexOf(target.name);
      Atomics.store(progress, TARGET, index);
      const samples: number[] = [];
      let rss = 0;
      const started = performance.now();
      let done = 0;
      for (let batch = 0; done < runs; batch++) {
        const numRuns = Math.min(batchSize, runs - done);
        const seed = (baseSeed * 1_000_003 + index * 10_007 + batch) | 0;
        Atomics.store(progress, SEED, seed);
        let input = 0;
        const property = fc.asyncProperty(target.input, async (value) => {
          Atomics.store(progress, INPUT, input++);
          Atomics.add(progress, HEARTBEAT, 1);
          await target.check(value);
        });
        try {
          await fc.assert(property, { seed, numRuns });
        } catch (err) {
          console.error(`FAIL: ${target.name}, batch seed ${seed}`);
          console.error(err instanceof Error ? err.message : err);
          // fast-check's error names the input; its cause says which property failed.
          if (err instanceof Error && err.cause !== undefined) console.error('cause:', err.cause);
          const path = /path: "([^"]+)"/.exec(String(err instanceof Error ? err.message : err))?.[1];
          if (path) console.error(`replay: FUZZ_REPLAY=${target.name}:${seed}:${path} npm run fuzz`);
          return 1;
        }
        done += numRuns;
        const m = heapNow();
        samples.push(m.heap);
        rss = Math.max(rss, m.rss);
        const seconds = (performance.now() - started) / 1000;
        console.log(`  ${target.name}: ${done}/${runs} inputs, ${Math.round(done / seconds)}/s, heap ${mib(m.heap)} MiB, rss ${mib(m.rss)} MiB`);
      }
      const seconds = (performance.now() - started) / 1000;
      const growth = heapGrowth(samples);
      rows.push(
        `${target.name.padEnd(6)} ${String(runs).padStart(9)} ${seconds.toFixed(0).padStart(7)} ${String(Math.round(runs / seconds)).padStart(9)}` +
          `   ${mib(samples[0] ?? 0).padStart(6)} ${mib(samples.at(-1) ?? 0).padStart(6)} ${mib(Math.max(...samples)).padStart(6)} ${mib(growth).padStart(7)} ${mib(rss).padStart(7)}`,
      );
      if (growth > heapSlack) {
        console.error(`FAIL: ${target.name}: the heap kept growing, by ${mib(growth)} MiB (more than ${mib(heapSlack)} MiB): a leak`);
        return 1;
      }
    }
    console.log('\ntarget    inputs       s  inputs/s   heap MiB: first   last    max  growth  max rss');
    for (const row of rows) console.log(row);

    console.log(`\nfloods: ${floodMiB} MiB into one session each, then what it still holds`);
    for (const shape of FLOODS) {
      const started = performance.now();
      Atomics.add(progress, HEARTBEAT, 1);
      const { retained } = await flood(world, shape, floodMiB);
      const seconds = (performance.now() - started) / 1000;
      console.log(`  ${shape.name.padEnd(42)} holds ${mib(Math.max(0, retained)).padStart(5)} MiB  (${(floodMiB / seconds).toFixed(1)} MiB/s)`);
      if (retained > 2 * MiB) {
        console.error(`FAIL: ${shape.name}: the session holds ${mib(retained)} MiB after ${floodMiB} MiB`);
        return 1;
      }
    }
    console.log('\nfuzz: no failure');
    return 0;
  } finally {
    world.close();
  }
}

/**
 * The growth the run cannot explain by warm-up: the lowest heap of the last third of the batches
 * minus the lowest of the first third (the first batch, where code and caches settle, left out).
 */
function heapGrowth(samples: readonly number[]): number {
  const settled = samples.slice(1);
  if (settled.length < 3) return 0;
  const third = Math.max(1, Math.floor(settled.length / 3));
  return Math.min(...settled.slice(-third)) - Math.min(...settled.slice(0, third));
}

async function replay(targets: ReturnType<typeof createTargets>['targets'][number]['target'][], spec: string): Promise<number> {
  const [name, seedText, ...pathParts] = spec.split(':');
  const target = targets.find((t) => t.name === name);
  const seed = Number(seedText);
  const path = pathParts.join(':');
  if (!target || !Number.isInteger(seed) || path === '') {
    console.error(`FUZZ_REPLAY=${spec} is not <target>:<seed>:<path> with a target of ${targets.map((t) => t.name).join(', ')}`);
    return 1;
  }
  try {
    await fc.assert(fc.asyncProperty(target.input, (value) => target.check(value)), { seed, path, verbose: 2 });
    console.log(`replay: ${name} seed ${seed} path ${path} passes`);
    return 0;
  } catch (err) {
    console.error(err);
    return 1;
  }
}

process.exit(await main());
