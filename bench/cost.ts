// Where the time goes (docs/benchmarks.md): CPU, context switches and system calls per message of
// one `postern serve`, measured per thread from /proc, which a busy machine disturbs far less than
// it disturbs messages per second. Run after `npm run bench` has built dist/:
//
//   node dist/bench/cost.js SESSIONS reused|once MESSAGES [held] [strace]
//
// "held": deliveries never run (the local courier is an LMTP server that accepts connections and
// never answers), so the figures are the accepting alone. "strace": also count system calls per
// message with strace -f, split into the event-loop thread and the others (strace slows the
// server down; its CPU figures are then not comparable). SIZE (bytes, default 1024) and RCPTS
// (recipients per message, each its own mailbox; default 1) in the environment. WORKERS=N runs
// the worker mode (`workers = N`) and adds each process's CPU per message: the primary, the queue
// owner (the one listening on data_dir/run/queue.sock) and the session workers together. LOG=info
// runs the server at its default log level, into a file, as `npm run bench` does (default: warn).

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { optionalPositiveFromEnv, positiveFromEnv } from '../test/support/env-number.js';
import { freePort } from '../test/support/postfix.js';
import { runSmtpSource, smtpSourceAvailable } from './smtp-source.js';

interface ThreadTimes {
  /** ms of CPU: the event-loop thread, libuv's pool, every other thread. */
  main: number;
  pool: number;
  other: number;
  /** Context switches of the event-loop thread, voluntary and not. */
  mainSwitches: number;
}

function threadTimes(pid: number): ThreadTimes {
  const out: ThreadTimes = { main: 0, pool: 0, other: 0, mainSwitches: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string, schedstat: string, status: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      schedstat = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // schedstat's first field: nanoseconds on the CPU (stat's ticks are 10 ms, too coarse).
    const ms = Number(schedstat.split(' ')[0]) / 1e6;
    if (tid === String(pid)) {
      out.main += ms;
      const switches = [...status.matchAll(/voluntary_ctxt_switches:\s+(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      out.mainSwitches += switches;
    } else if (name.startsWith('libuv')) out.pool += ms;
    else out.other += ms;
  }
  return out;
}

function perMessage(a: ThreadTimes, b: ThreadTimes, n: number): Record<string, number> {
  const us = (k: 'main' | 'pool' | 'other'): number => Math.round(((b[k] - a[k]) * 1000) / n);
  return { main_us: us('main'), pool_us: us('pool'), other_us: us('other'), main_switches: +((b.mainSwitches - a.mainSwitches) / n).toFixed(1) };
}

/** The children of `pid`, from /proc: in the worker mode, the queue owner and session workers. */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (new RegExp(`^PPid:\\s+${pid}$`, 'm').test(readFileSync(`/proc/${entry}/status`, 'utf8'))) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Which of `pids` holds the listening Unix socket bound to `path` (/proc/net/unix, /proc/PID/fd). */
function listenerAmong(pids: readonly number[], path: string): number | undefined {
  const line = readFileSync('/proc/net/unix', 'utf8').split('\n').find((l) => l.endsWith(` ${path}`) && l.split(/\s+/)[5] === '01');
  const inode = line?.trim().split(/\s+/)[6];
  return pids.find((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`);
    } catch {
      return false;
    }
  });
}

/** One process's CPU, every thread, in ms. */
function processMs(pid: number): number {
  const t = threadTimes(pid);
  return t.main + t.pool + t.other;
}

/** The worker mode's processes: CPU per message of the primary, the queue owner, the session workers. */
interface Roles {
  readonly primary: number;
  readonly queueOwner: number | undefined;
  readonly sessions: readonly number[];
}

function rolesCpu(roles: Roles): Record<string, number> {
  return {
    primary: processMs(roles.primary),
    queue_owner: roles.queueOwner === undefined ? 0 : processMs(roles.queueOwner),
    sessions: roles.sessions.reduce((sum, pid) => sum + processMs(pid), 0),
  };
}

function rolesPerMessage(a: Record<string, number>, b: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(Object.keys(a).map((k) => [`${k}_us`, Math.round((((b[k] ?? 0) - (a[k] ?? 0)) * 1000) / n)]));
}

/** System calls per message from `strace -f -o FILE`: the event-loop thread's, then the others'. */
function countSyscalls(file: string, pid: number, n: number): { main: string; others: string } {
  const main = new Map<string, number>();
  const others = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.includes('resumed>')) continue; // the second half of a call counted at its start
    const m = /^(\d+)\s+([a-z0-9_]+)\(/.exec(line);
    if (!m) continue;
    const into = m[1] === String(pid) ? main : others;
    into.set(m[2] ?? '', (into.get(m[2] ?? '') ?? 0) + 1);
  }
  const show = (counts: Map<string, number>): string => {
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const top = [...counts].sort((x, y) => y[1] - x[1]).filter(([, c]) => c / n >= 0.05);
    return `${(total / n).toFixed(1)} (${top.map(([name, c]) => `${name} ${(c / n).toFixed(2)}`).join(', ')})`;
  };
  return { main: show(main), others: show(others) };
}

async function main(): Promise<void> {
  const [sessionsArg = '1', mode = 'reused', messagesArg = '1000', ...flags] = process.argv.slice(2);
  const sessions = Number(sessionsArg);
  const messages = Number(messagesArg);
  if (!Number.isInteger(sessions) || !Number.isInteger(messages) || (mode !== 'reused' && mode !== 'once')) {
    throw new Error('usage: node dist/bench/cost.js SESSIONS reused|once MESSAGES [held] [strace]');
  }
  if (!smtpSourceAvailable()) throw new Error('smtp-source not found: apt-get install postfix');
  const held = flags.includes('held');
  const trace = flags.includes('strace');
  const size = positiveFromEnv('SIZE', 1024);
  const rcpts = positiveFromEnv('RCPTS', 1);
  const workers = optionalPositiveFromEnv('WORKERS', 2);
  const logInfo = process.env.LOG === 'info';
  const work = mkdtempSync(join(tmpdir(), 'postern-cost-'));
  chmodSync(work, 0o755); // the server may run as nobody
  const silent = new Set<Socket>();
  const lmtp = createServer((c) => {
    c.on('error', () => undefined);
    silent.add(c);
  });
  if (held) {
    await new Promise<void>((resolve) => lmtp.listen(join(work, 'lmtp'), resolve));
    chmodSync(join(work, 'lmtp'), 0o777);
  }
  const postern = new PosternInstance({
    hostname: 'cost.localdomain',
    mxPort: await freePort(),
    submission: false,
    logLevel: logInfo ? 'info' : 'warn',
    logToFile: logInfo,
    limits: { max_connections_per_ip: 1000 },
    ...(held ? { delivery: { lmtp: `unix:${join(work, 'lmtp')}` } } : {}),
    ...(workers === undefined ? {} : { workers }),
  });
  let server: PosternProcess | undefined;
  try {
    await postern.cliOk(['domain', 'add', 'cost.test']);
    // smtp-source -r N sends to bench@ and to numbered ones (1bench@, 2bench@, ...).
    const mailboxes = ['bench@cost.test', ...(rcpts > 1 ? Array.from({ length: rcpts }, (_, i) => `${i + 1}bench@cost.test`) : [])];
    for (const m of mailboxes) await postern.addUser(m);
    const last = mailboxes.at(-1) ?? 'bench@cost.test';
    server = await postern.start();
    const pid = server.pid;
    const port = server.port('mx');
    const delivered = (): number => {
      try {
        return readdirSync(postern.maildirNew(last)).length;
      } catch {
        return 0;
      }
    };
    const source = (n: number, s: number, reuse: boolean): Promise<number> =>
      rcpts > 1 ? smtpSourceMany(port, s, n, size, reuse, rcpts) : runSmtpSource({ port, sessions: s, messages: n, size, reuse, recipient: 'bench@cost.test' });
    // Warm up (JIT, the Maildirs created), then let the deliveries finish.
    await source(300, 10, true);
    while (!held && delivered() < 300) await sleep(50);
    await sleep(300);
    const strace = trace ? spawn('strace', ['-f', '-qq', '-o', join(work, 'strace.out'), '-p', String(pid)], { stdio: 'ignore' }) : undefined;
    if (strace) await sleep(1000);
    const children = childrenOf(pid);
    const queueOwner = listenerAmong(children, join(postern.dataDir, 'run', 'queue.sock'));
    const roles: Roles | undefined = children.length === 0 ? undefined : { primary: pid, queueOwner, sessions: children.filter((c) => c !== queueOwner) };
    const before = threadTimes(pid);
    const rolesBefore = roles && rolesCpu(roles);
    const started = performance.now();
    const acceptSeconds = await source(messages, sessions, mode === 'reused');
    const accepted = threadTimes(pid);
    const rolesAccepted = roles && rolesCpu(roles);
    while (!held && delivered() < 300 + messages) await sleep(20);
    const doneSeconds = (performance.now() - started) / 1000;
    const done = threadTimes(pid);
    const rolesDone = roles && rolesCpu(roles);
    if (strace) {
      await sleep(300);
      strace.kill('SIGINT');
      await new Promise((resolve) => strace.once('exit', resolve));
    }
    console.log(
      JSON.stringify({
        sessions,
        mode,
        messages,
        held,
        accepted_per_s: Math.round(messages / acceptSeconds),
        done_per_s: Math.round(messages / doneSeconds),
        while_accepting: perMessage(before, accepted, messages),
        until_delivered: perMessage(before, done, messages),
        ...(rolesBefore && rolesAccepted && rolesDone
          ? { processes_while_accepting: rolesPerMessage(rolesBefore, rolesAccepted, messages), processes_until_delivered: rolesPerMessage(rolesBefore, rolesDone, messages) }
          : {}),
      }),
    );
    if (strace) {
      const counts = countSyscalls(join(work, 'strace.out'), pid, messages);
      console.log(`system calls per message, event-loop thread: ${counts.main}`);
      console.log(`system calls per message, other threads: ${counts.others}`);
    }
  } finally {
    lmtp.close();
    for (const c of silent) c.destroy(); // hung deliveries fail now, so the server can stop
    await server?.stop().catch(() => server?.kill());
    await postern.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

/** smtp-source with RCPTS recipients per message (-r: 1bench@, 2bench@, ...). */
function smtpSourceMany(port: number, sessions: number, messages: number, size: number, reuse: boolean, rcpts: number): Promise<number> {
  const args = ['-4', '-s', String(sessions), '-m', String(messages), '-l', String(size), '-f', 'sender@client.test', '-t', 'bench@cost.test', '-r', String(rcpts), '-M', 'client.test', '-C', '5', ...(reuse ? ['-d'] : []), `127.0.0.1:${port}`];
  const started = performance.now();
  const bin = ['/usr/sbin/smtp-source', '/usr/bin/smtp-source'].find((p) => existsSync(p)) ?? 'smtp-source';
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(`smtp-source exited ${code}: ${stderr.trim()}`))));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
