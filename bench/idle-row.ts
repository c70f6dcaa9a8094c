// The idle-sessions row of `npm run bench` (BENCH_ONLY=idle): what a connection that has been
// greeted and then says nothing costs the server, in resident memory. A busy MX holds thousands
// of these (slow clients, clients waiting for a reply from their own queue), and a flood of them
// is the cheapest attack there is. The row opens IDLE_SESSIONS connections to a fresh server,
// waits for every greeting, and divides the growth of the server's RSS by their number: once on
// the MX port (plain), once on the submissions port (implicit TLS, the handshake done).
//
// The server runs alone and the connections come from this process, so the figure is the
// server's own; each kind gets a fresh server so one's freed memory does not hide the other's.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { parse, stringify } from 'smol-toml';
import { writeFileSync } from 'node:fs';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { freePort } from '../test/support/postfix.js';
import { waitUntilAccepting } from './auth-sessions.js';

const IDLE_SESSIONS = 10_000;
/** Open this many at a time: a listen queue flooded by 10,000 SYNs drops some. */
const OPEN_BATCH = 200;

export interface IdleRowStarted {
  postern?: PosternInstance;
  server?: PosternProcess;
}

export interface IdleRowResult {
  readonly sessions: number;
  readonly plainBytesPerSession: number;
  readonly tlsBytesPerSession: number;
}

export async function measureIdleRow(scale: number, started: IdleRowStarted): Promise<IdleRowResult> {
  const sessions = Math.max(500, Math.round(IDLE_SESSIONS * scale));
  // The client side of every connection is in this process, and the server's side in its own,
  // which inherits the limit when it is spawned.
  raiseFileLimit(process.pid, sessions);
  const plain = await perSession('plain', sessions, started);
  const secure = await perSession('tls', sessions, started);
  return { sessions, plainBytesPerSession: plain, tlsBytesPerSession: secure };
}

export function printIdleRow(r: IdleRowResult): void {
  console.log('');
  console.log(`Idle sessions: ${r.sessions} connections greeted and left idle; growth of the server's RSS per session`);
  console.log(`  plain (MX port):               ${(r.plainBytesPerSession / 1024).toFixed(1)} KiB per session (target: under 8 KiB)`);
  console.log(`  implicit TLS (submissions):    ${(r.tlsBytesPerSession / 1024).toFixed(1)} KiB per session`);
}

async function perSession(kind: 'plain' | 'tls', sessions: number, started: IdleRowStarted): Promise<number> {
  const postern = new PosternInstance({ hostname: 'idle.localdomain', mxPort: await freePort(), logLevel: 'warn' });
  started.postern = postern;
  const submissionsPort = await freePort();
  const config = parse(readFileSync(postern.configPath, 'utf8')) as Record<string, Record<string, unknown>>;
  config.listen = { ...config.listen, submission: [], submissions: [`127.0.0.1:${submissionsPort}`] };
  config.limits = { ...config.limits, max_connections: sessions * 2, max_connections_per_ip: sessions * 2 };
  writeFileSync(postern.configPath, stringify(config));
  const server = await postern.start();
  started.server = server;
  requireFileLimit(server.pid, sessions);
  const port = kind === 'plain' ? server.port('mx') : submissionsPort;
  await waitUntilAccepting(submissionsPort);

  const sockets: net.Socket[] = [];
  try {
    // A few sessions first, so that what every connection shares (TLS context, code paths
    // compiled on first use) is in the baseline, not in the per-session figure.
    for (let i = 0; i < 20; i++) sockets.push(await openGreeted(kind, port));
    await settle();
    const before = rssBytes(server.pid);
    for (let opened = 0; opened < sessions; opened += OPEN_BATCH) {
      const batch = Math.min(OPEN_BATCH, sessions - opened);
      sockets.push(...(await Promise.all(Array.from({ length: batch }, () => openGreeted(kind, port)))));
    }
    await settle();
    const after = rssBytes(server.pid);
    return (after - before) / sessions;
  } finally {
    for (const s of sockets) s.destroy();
    await server.stop().catch(() => server.kill());
    await postern.dispose();
    started.server = undefined;
    started.postern = undefined;
  }
}

/** A connection that has read the server's 220 greeting and then stays silent. */
function openGreeted(kind: 'plain' | 'tls', port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      kind === 'plain'
        ? net.connect({ host: '127.0.0.1', port })
        : tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    socket.setEncoding('utf8');
    socket.once('error', reject);
    socket.once('data', (greeting: string) => {
      if (!greeting.startsWith('220')) reject(new Error(`unexpected greeting: ${greeting.trim()}`));
      else resolve(socket);
    });
  });
}

/** Lets the server finish what the connections started (allocations, timers) before reading RSS. */
async function settle(): Promise<void> {
  await sleep(2_000);
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!kib) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib[1]) * 1024;
}

/** Room for `sessions` descriptors plus headroom, with util-linux's prlimit (Node cannot setrlimit). */
function raiseFileLimit(pid: number, sessions: number): void {
  const want = sessions + 1024;
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${want}:${want}`]);
}

function requireFileLimit(pid: number, sessions: number): void {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? 0);
  if (soft < sessions + 100) throw new Error(`the server may open only ${soft} files; the row needs ${sessions + 100}`);
}
