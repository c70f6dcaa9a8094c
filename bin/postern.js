#!/usr/bin/env node
// The command-line entry point: the compiled CLI lives in dist/ (built by `npm ci` via `prepare`).

// Checked before anything else loads: on an older Node the first symptom would be a crash deep
// inside a dependency (better-sqlite3 13 segfaults on Node 20), not a reason.
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
if (NODE_MAJOR < 24) {
  process.stderr.write(
    `postern: Node.js 24 or newer is needed, this is ${process.version}; ` +
      'install Node.js 24 LTS, or run ". scripts/use-node24.sh" in this checkout to put it on the PATH\n',
  );
  process.exit(1);
}

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
