#!/usr/bin/env node
// The command-line entry point: the compiled CLI lives in dist/ (built by `npm ci` via `prepare`).
import { main } from '../dist/src/cli/main.js';

main(process.argv).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`postern: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
