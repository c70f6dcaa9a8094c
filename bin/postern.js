#!/usr/bin/env node
// The command-line entry point: the compiled CLI lives in dist/ (built by `npm ci` via `prepare`).

// Maildir and spool fsyncs run in libuv's thread pool; its default of 4 threads would serialize
// them. It must be sized before anything touches the pool, hence the dynamic import below.
process.env.UV_THREADPOOL_SIZE ??= '16';

const { main } = await import('../dist/src/cli/main.js');

main(process.argv).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`postern: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
