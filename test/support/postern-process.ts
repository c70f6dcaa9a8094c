// The real server as a child process, for end-to-end tests and the benchmark: a temp directory
// with a generated config and data_dir (a PosternInstance), started as
// `node bin/postern.js serve --config FILE` (a PosternProcess). Ports are 0 unless given; the
// server's "listening" log line says which ports it got.
//
// When the tests run as root (CI does) the server switches to "nobody" after binding, so every
// directory it must reach is made mode 0755 (mkdtemp creates 0700).

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { canConnect } from './postfix.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'smol-toml';

/** The repository root: this file runs from dist/test/support/. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const POSTERN_BIN = join(REPO_ROOT, 'bin', 'postern.js');

export interface InstanceOptions {
  readonly hostname?: string;
  /** Where postmaster@ of every local domain goes (RFC 5321 4.5.1). */
  readonly postmaster?: string;
  /** Fixed MX port; 0 (default) lets the kernel choose. */
  readonly mxPort?: number;
  /** Also listen for submission and submissions (on port 0). Default true. */
  readonly submission?: boolean;
  /** Also listen for POP3 and POP3S (on port 0). Default false. */
  readonly pop3?: boolean;
  /** Also listen for HTTP and HTTPS (on port 0): autoconfig and MTA-STS. Default false. */
  readonly web?: boolean;
  /** Also serve the Prometheus metrics (on port 0). Default false. */
  readonly metrics?: boolean;
  /** Fixed submission port (a quiet log level hides the line that says which port 0 got). */
  readonly submissionPort?: number;
  /** Keys of [limits], e.g. { max_recipients: 5, greeting_delay_ms: 500 }. */
  readonly limits?: Readonly<Record<string, unknown>>;
  readonly smtp?: Readonly<Record<string, string>>;
  /** Keys of [relay], [queue] and [dkim], e.g. { dns_servers: ["127.0.0.1:5353"], mx_port: 2525 }. */
  readonly relay?: Readonly<Record<string, unknown>>;
  readonly queue?: Readonly<Record<string, unknown>>;
  readonly dkim?: Readonly<Record<string, unknown>>;
  /** Keys of [screen], e.g. { dnsbl_sites: ["bl.test*3"] }. */
  readonly screen?: Readonly<Record<string, unknown>>;
  /** Keys of [sender_auth], e.g. { spf_fail: "reject" }. */
  readonly senderAuth?: Readonly<Record<string, unknown>>;
  /** Keys of [dovecot] and [delivery], e.g. { imaps: ["127.0.0.1:10993"] } and { lmtp: "unix:/tmp/x/lmtp" }. */
  readonly dovecot?: Readonly<Record<string, unknown>>;
  readonly delivery?: Readonly<Record<string, unknown>>;
  /** Extra environment for the server process, e.g. NODE_EXTRA_CA_CERTS for a test CA. */
  readonly env?: Readonly<Record<string, string>>;
  readonly logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Session worker processes; default: the config's default (one per core). */
  readonly workers?: number;
  /**
   * The server's standard output (its log) goes to `<root>/postern.log`, as a service manager
   * writing to a file would have it, instead of a pipe this process reads: for the benchmarks,
   * where reading the log would take CPU from the servers. Needs a fixed `mxPort` (the
   * "listening" line is not read).
   */
  readonly logToFile?: boolean;
}

export interface Listener {
  readonly kind: 'mx' | 'submission' | 'submissions' | 'pop3' | 'pop3s' | 'http' | 'https' | 'metrics';
  readonly address: string;
  readonly port: number;
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface MaildirMessage {
  readonly file: string;
  readonly text: string;
}

/** A config file and a data_dir in a fresh temp directory; outlives server restarts. */
export class PosternInstance {
  readonly root: string;
  readonly configPath: string;
  readonly dataDir: string;
  private readonly processes = new Set<PosternProcess>();

  private readonly env: Readonly<Record<string, string>>;
  /** Where the server's standard output goes, with `logToFile`. */
  readonly logPath: string | undefined;

  constructor(options: InstanceOptions = {}) {
    this.env = options.env ?? {};
    this.root = mkdtempSync(join(tmpdir(), 'postern-e2e-'));
    this.logPath = options.logToFile === true ? join(this.root, 'postern.log') : undefined;
    chmodSync(this.root, 0o755);
    this.dataDir = join(this.root, 'data');
    this.configPath = join(this.root, 'postern.toml');
    writeFileSync(this.configPath, renderConfig(this.dataDir, options));
  }

  /** Starts the server and resolves once it listens. */
  async start(): Promise<PosternProcess> {
    const server = await PosternProcess.spawn(this.configPath, undefined, this.env, this.logPath);
    this.processes.add(server);
    return server;
  }

  /**
   * Runs `postern ...args --config FILE`, with `stdin` written to its standard input. The option
   * goes last, where commander finds it whether it belongs to the program or the subcommand.
   */
  cli(args: readonly string[], stdin = ''): Promise<CliResult> {
    return runPostern([...args, '--config', this.configPath], this.root, stdin);
  }

  /** Like cli(), but throws (with the output) unless the command exits 0. */
  async cliOk(args: readonly string[], stdin = ''): Promise<string> {
    const result = await this.cli(args, stdin);
    if (result.code !== 0) {
      throw new Error(`postern ${args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    }
    return result.stdout;
  }

  /** Adds a user (its domain must exist) with a fixed password, given on stdin. */
  async addUser(address: string, password = 'correct horse battery staple'): Promise<void> {
    await this.cliOk(['user', 'add', address, '--password-stdin'], `${password}\n`);
  }

  /** Where delivery puts new mail for a local user: <data_dir>/mail/<domain>/<local>/new. */
  maildirNew(address: string): string {
    const at = address.lastIndexOf('@');
    return join(this.dataDir, 'mail', address.slice(at + 1), address.slice(0, at), 'new');
  }

  /** The messages in the user's new/ folder now (an absent folder holds none). */
  readMaildir(address: string): MaildirMessage[] {
    const dir = this.maildirNew(address);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((name) => !name.startsWith('.'))
      .sort()
      .map((name) => ({ file: join(dir, name), text: readFileSync(join(dir, name), 'latin1') }));
  }

  /** Polls until the user's new/ holds at least `count` messages; throws after `timeoutMs`. */
  async waitForMail(address: string, count = 1, timeoutMs = 20_000): Promise<MaildirMessage[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const messages = this.readMaildir(address);
      if (messages.length >= count) return messages;
      if (Date.now() > deadline) {
        throw new Error(`timed out: ${messages.length} of ${count} messages in ${this.maildirNew(address)}`);
      }
      await delay(50);
    }
  }

  /** Polls until a message containing `marker` (e.g. a unique Subject) is in the user's new/. */
  async waitForMessage(address: string, marker: string, timeoutMs = 20_000): Promise<MaildirMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.readMaildir(address).find((m) => m.text.includes(marker));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out waiting for "${marker}" in ${this.maildirNew(address)}`);
      await delay(50);
    }
  }

  /** Kills any process still running and removes the temp directory. */
  async dispose(): Promise<void> {
    for (const server of this.processes) await server.kill();
    this.processes.clear();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** One run of `postern serve`. */
export class PosternProcess {
  private exitStatus: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exited = false;
  /** Recent log lines (stdout and stderr), for failure messages. */
  private readonly recent: string[] = [];
  private readonly lineWatchers = new Set<(line: string) => void>();
  listeners: readonly Listener[] = [];

  private constructor(private readonly child: ChildProcess) {
    this.exitStatus = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exited = true;
        resolve({ code, signal });
      });
    });
  }

  static async spawn(
    configPath: string,
    // The primary and its workers each load the code: on a busy CI machine that passes 20 s.
    readyTimeoutMs = 60_000,
    env: Readonly<Record<string, string>> = {},
    logPath?: string,
  ): Promise<PosternProcess> {
    const stdout = logPath === undefined ? 'pipe' : openSync(logPath, 'a');
    const child = spawn(process.execPath, [POSTERN_BIN, 'serve', '--config', configPath], {
      stdio: ['ignore', stdout, 'pipe'],
      env: { ...process.env, ...env },
    });
    if (typeof stdout === 'number') closeSync(stdout);
    const server = new PosternProcess(child);
    await server.waitUntilListening(configPath, readyTimeoutMs);
    return server;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  port(kind: Listener['kind'] = 'mx'): number {
    const listener = this.listeners.find((l) => l.kind === kind);
    if (!listener) throw new Error(`the server has no ${kind} listener (listeners: ${JSON.stringify(this.listeners)})`);
    return listener.port;
  }

  /** The last lines the server logged, for assertion messages. */
  log(): string {
    return this.recent.join('\n');
  }

  /**
   * Resolves with the first JSON log entry (among the recent ones, or any logged from now on)
   * that `matches`; throws with the log's tail after `timeoutMs`.
   */
  waitForLog(matches: (entry: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const test = (line: string): Record<string, unknown> | undefined => {
      if (!line.startsWith('{')) return undefined;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        return matches(entry) ? entry : undefined;
      } catch {
        return undefined;
      }
    };
    for (const line of this.recent) {
      const found = test(line);
      if (found) return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.lineWatchers.delete(watch);
        reject(new Error(`timed out waiting for a log line\n${this.log()}`));
      }, timeoutMs);
      const watch = (line: string): void => {
        const found = test(line);
        if (!found) return;
        clearTimeout(timer);
        this.lineWatchers.delete(watch);
        resolve(found);
      };
      this.lineWatchers.add(watch);
    });
  }

  /**
   * SIGTERM, then waits for the exit. Returns the exit code (a clean stop is 0), or the signal's
   * name if the process died of it (no handler installed).
   */
  async stop(timeoutMs = 30_000): Promise<number | NodeJS.Signals | null> {
    if (!this.exited) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const { code, signal } = await this.exitStatus;
    clearTimeout(timer);
    if (signal === 'SIGKILL') throw new Error(`postern did not stop within ${timeoutMs} ms of SIGTERM\n${this.log()}`);
    return signal ?? code;
  }

  /** kill -9: the crash that durability must survive. */
  async kill(): Promise<void> {
    if (!this.exited) this.child.kill('SIGKILL');
    await this.exitStatus;
  }

  private remember(line: string): void {
    this.recent.push(line);
    if (this.recent.length > 200) this.recent.shift();
    for (const watch of [...this.lineWatchers]) watch(line);
  }

  /**
   * Resolves on the "listening" log line; with a fixed MX port, also on the port accepting a
   * connection (a quiet log level may hide that line). The pipes are read until the end either
   * way: a full pipe would block the server's synchronous log writes.
   */
  private waitUntilListening(configPath: string, timeoutMs: number): Promise<void> {
    const fixedPort = fixedMxPort(configPath);
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) {
          this.child.kill('SIGKILL');
          reject(error);
        } else resolve();
      };
      const timer = setTimeout(() => settle(new Error(`postern did not start within ${timeoutMs} ms\n${this.log()}`)), timeoutMs);
      // Without a pipe (logToFile) the fixed port below tells.
      if (this.child.stdout) forEachLine(this.child.stdout, (line) => {
        this.remember(line);
        const listeners = parseListening(line);
        if (listeners) {
          this.listeners = listeners;
          settle();
        }
      });
      forEachLine(this.child.stderr!, (line) => this.remember(line));
      void this.exitStatus.then(({ code, signal }) =>
        settle(new Error(`postern exited (${signal ?? code}) before listening\n${this.log()}`)),
      );
      if (fixedPort !== undefined) {
        void waitForPort(fixedPort, () => settled).then((ok) => {
          if (!ok) return;
          this.listeners = [{ kind: 'mx', address: '127.0.0.1', port: fixedPort }];
          settle();
        });
      }
    });
  }
}

function renderConfig(dataDir: string, options: InstanceOptions): string {
  const loopback = (port: number): string[] => [`127.0.0.1:${port}`];
  const withSubmission = options.submission ?? true;
  return stringify({
    hostname: options.hostname ?? 'mx.postern.test',
    data_dir: dataDir,
    ...(options.postmaster === undefined ? {} : { postmaster: options.postmaster }),
    // "": as root, switch to nobody after binding; otherwise stay who we are.
    user: '',
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    listen: {
      mx: loopback(options.mxPort ?? 0),
      submission: withSubmission ? loopback(options.submissionPort ?? 0) : [],
      submissions: withSubmission ? loopback(0) : [],
      pop3: options.pop3 ? loopback(0) : [],
      pop3s: options.pop3 ? loopback(0) : [],
      // Off unless asked for: the defaults (127.0.0.1:2080 and :2443) would collide between tests.
      http: options.web ? loopback(0) : [],
      https: options.web ? loopback(0) : [],
      // Off unless asked for: the default (127.0.0.1:9425) would collide between tests.
      metrics: options.metrics ? loopback(0) : [],
    },
    limits: { shutdown_grace: 5, ...options.limits },
    smtp: { ...options.smtp },
    // No DNS cache: tests change their DNS records while the server runs.
    ...(options.relay ? { relay: { dns_cache_seconds: 0, ...options.relay } } : {}),
    ...(options.queue ? { queue: { ...options.queue } } : {}),
    ...(options.dkim ? { dkim: { ...options.dkim } } : {}),
    ...(options.screen ? { screen: { ...options.screen } } : {}),
    ...(options.senderAuth ? { sender_auth: { ...options.senderAuth } } : {}),
    ...(options.dovecot ? { dovecot: { ...options.dovecot } } : {}),
    ...(options.delivery ? { delivery: { ...options.delivery } } : {}),
    log: { level: options.logLevel ?? 'info', format: 'json' },
  });
}

function fixedMxPort(configPath: string): number | undefined {
  const match = /^mx\s*=\s*\[\s*"127\.0\.0\.1:(\d+)"/m.exec(readFileSync(configPath, 'utf8'));
  const port = match ? Number(match[1]) : 0;
  return port > 0 ? port : undefined;
}

/** The listeners from a pino line like {"msg":"listening","listeners":[{kind,address,port}]}. */
function parseListening(line: string): Listener[] | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const entry = JSON.parse(line) as { msg?: unknown; listeners?: unknown };
    if (entry.msg !== 'listening' || !Array.isArray(entry.listeners)) return undefined;
    return entry.listeners as Listener[];
  } catch {
    return undefined;
  }
}

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
}

async function waitForPort(port: number, givenUp: () => boolean): Promise<boolean> {
  while (!givenUp()) {
    if (await canConnect('127.0.0.1', port)) return true;
    await delay(50);
  }
  return false;
}

/** Runs `postern ...args` in `cwd` with `stdin` on its standard input, as an operator would; `env` adds to the environment. */
export function runPostern(
  args: readonly string[],
  cwd: string,
  stdin = '',
  env: Readonly<Record<string, string>> = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, [POSTERN_BIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  child.stdin.end(stdin);
  return collect(child);
}

function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The usual `after` of a test that started a server: SIGTERM must stop it with exit code 0
 * (a clean shutdown), and the instance's files go away whatever happened.
 */
export async function stopAndDispose(server: PosternProcess | undefined, instance: PosternInstance | undefined): Promise<void> {
  try {
    if (server) assert.equal(await server.stop(), 0, `SIGTERM must stop the server with exit code 0\n${server.log()}`);
  } finally {
    await instance?.dispose();
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
