// For the in-process server tests (server.test.ts, auth.test.ts): a started server with the temp
// dir that is its data_dir, the log lines it wrote, and the ports its listeners got (they all
// listen on port 0); and a way to wait for what the server does asynchronously.

import assert from 'node:assert/strict';
import type { ListenerKind } from '../../src/mail/envelope.js';
import type { RunningServer } from '../../src/server/server.js';

export interface TestServer {
  readonly server: RunningServer;
  readonly dir: string;
  readonly logs: Record<string, unknown>[];
  port(kind: ListenerKind): number;
}

export function testServer(server: RunningServer, dir: string, logs: Record<string, unknown>[]): TestServer {
  const port = (kind: ListenerKind): number => {
    const l = server.listeners.find((x) => x.kind === kind);
    assert.ok(l, `a ${kind} listener`);
    return l.port;
  };
  return { server, dir, logs, port };
}

/** Waits for something the server does asynchronously (a log line, a file); no timing asserted. */
export async function eventually<T>(probe: () => T | undefined, what: string): Promise<T> {
  // Generous: a child process starting on a loaded 2-core CI machine can take seconds.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const v = probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}
