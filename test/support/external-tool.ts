// The interop tests drive real third-party clients (swaks, Python's smtplib). A missing tool is
// a broken test machine, not a reason to skip: fail with the command that fixes it.

import { spawn, spawnSync } from 'node:child_process';

export interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Throws unless `name` runs from PATH. */
export function requireTool(name: string, debianPackage: string): void {
  const probe = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new Error(
      `"${name}" is not installed; the interop tests need it. ` +
        `Run .ci/run as root, or: apt-get install --no-install-recommends ${debianPackage}`,
    );
  }
}

/** Runs a tool to completion without blocking the event loop (the server may share it). */
export function runTool(command: string, args: readonly string[], input = ''): Promise<ToolResult> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  // A tool that exits without reading its input (doveconf, curl with no body to send) closes
  // the pipe first: EPIPE there is no failure, the exit code says how the tool did.
  child.stdin.on('error', () => undefined);
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
