// What a person starting the server sees. It goes to stderr in every log format, so stdout carries
// nothing but log lines (JSON lines stay machine-readable; pretty logs stay uncluttered).

import { basename, isAbsolute, relative } from 'node:path';
import type { BoundListener } from './listeners.js';
import { formatHostPort } from './listeners.js';

/** How this process was started, which decides the admin command a person can paste. */
export interface Invocation {
  /** process.argv[1]: the script node runs (a PATH link named "postern" when installed). */
  readonly script: string;
  /** Where the person's shell is: npm's INIT_CWD under `npm start`, else the process's cwd. */
  readonly cwd: string;
  /** --config as given to serve; admin commands need the same one. */
  readonly configPath?: string | undefined;
}

export function listeningBanner(listeners: readonly BoundListener[], invocation: Invocation): string {
  const where = listeners.map((l) => `${l.kind} ${formatHostPort(l.address, l.port)}`).join(', ');
  const postern = adminCommand(invocation);
  return (
    `Postern is listening: ${where}\n` +
    `Next: ${postern} domain add example.test && echo secret | ${postern} user add alice@example.test --password-stdin\n` +
    'Reload the config with SIGHUP; stop with SIGTERM or Ctrl-C.\n'
  );
}

/**
 * The command that reaches this installation from the person's directory: `postern` when it is
 * installed on the PATH, otherwise the script node runs (`node bin/postern.js` in a checkout,
 * also after `npm start`). Not `npx postern`: in a checkout its first run installs the project
 * into npx's cache, which runs the `prepare` build and rewrites dist/ under the running server.
 */
export function adminCommand(invocation: Invocation): string {
  let command: string;
  if (basename(invocation.script) === 'postern') command = 'postern';
  else command = `node ${shellWord(displayPath(invocation.script, invocation.cwd))}`;
  if (invocation.configPath !== undefined) command += ` --config ${shellWord(invocation.configPath)}`;
  return command;
}

function displayPath(path: string, cwd: string): string {
  if (!isAbsolute(path)) return path;
  const rel = relative(cwd, path);
  return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
