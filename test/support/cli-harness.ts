// The admin commands of a test config, run as the real `postern` process: what succeeds prints
// only to stdout and exits 0; what fails prints exactly one line, "postern: ...", and exits 1.

import assert from 'node:assert/strict';
import { runPostern, type CliResult } from './postern-process.js';

export interface CliHarness {
  postern(...args: string[]): Promise<CliResult>;
  /** stdout of a command that must succeed with nothing on stderr. */
  succeeds(...args: string[]): Promise<string>;
  /** A command that must fail with one line on stderr matching `message`, and print nothing. */
  fails(message: RegExp, ...args: string[]): Promise<void>;
}

/** `where()` gives the config file and working directory (set up in a test's `before`). */
export function cliHarness(where: () => { readonly config: string; readonly dir: string }): CliHarness {
  const postern = (...args: string[]): Promise<CliResult> => runPostern([...args, '--config', where().config], where().dir);
  return {
    postern,
    async succeeds(...args) {
      const r = await postern(...args);
      assert.equal(r.stderr, '', `stderr of postern ${args.join(' ')}`);
      assert.equal(r.code, 0, `exit code of postern ${args.join(' ')}`);
      return r.stdout;
    },
    async fails(message, ...args) {
      const r = await postern(...args);
      assert.equal(r.code, 1, `exit code (stderr: ${r.stderr})`);
      assert.match(r.stderr, /^postern: [^\n]+\n$/, 'one line on stderr');
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    },
  };
}
