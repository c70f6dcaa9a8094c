// A private Dovecot for tests and the benchmark, configured the way an operator would: by
// `postern dovecot config` and `postern dovecot sql` for a PosternInstance, plus only the settings
// a private instance needs (its own base_dir, state_dir, log file and instance name). It serves
// IMAP and LMTP on the listeners the Postern config names ([dovecot] imap/imaps, [delivery] lmtp;
// dovecotListeners() picks free loopback ports for them), reads Postern's accounts from its store
// and its Maildirs as Postern's account, and with `pop3s` also serves Dovecot's POP3.
// startSasl() is the other kind: no mail at all, only the auth service as a private Postfix's
// SASL server (the benchmark's AUTH row), its accounts in an SQLite passdb (dovecot-core and
// dovecot-sqlite).
//
// Start Postern first: with [tls] unset, Dovecot presents the certificate `postern serve`
// generates into data_dir on its first start. A "unix:/path" [delivery] lmtp needs an existing
// directory (Dovecot's master, as root, creates the socket there for Postern's account).
//
// Needs root (Dovecot's master starts as root, then runs mail processes as Postern's account) and
// the Debian packages dovecot-imapd, dovecot-lmtpd and dovecot-sqlite (dovecot-pop3d for pop3s).
// stop() ends the master and waits until none of the instance's processes is left; a test run
// that exits without calling it still sends the master SIGTERM, and its children follow it.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { parse } from 'smol-toml';
import { parseListenAddress } from '../../src/config/schema.js';
import { runTool } from './external-tool.js';
import type { PosternInstance } from './postern-process.js';
import { freePort } from './postfix.js';

const DOVECOT = '/usr/sbin/dovecot';
const DOVECONF = '/usr/bin/doveconf';
const DOVEADM = '/usr/bin/doveadm';

/** What each protocol needs installed, and from which Debian package. */
const PROGRAMS: readonly { readonly path: string; readonly pkg: string }[] = [
  { path: DOVECOT, pkg: 'dovecot-core' },
  { path: '/usr/lib/dovecot/imap', pkg: 'dovecot-imapd' },
  { path: '/usr/lib/dovecot/lmtp', pkg: 'dovecot-lmtpd' },
  { path: '/usr/lib/dovecot/modules/auth/libdriver_sqlite.so', pkg: 'dovecot-sqlite' },
];
const POP3 = { path: '/usr/lib/dovecot/pop3', pkg: 'dovecot-pop3d' };

export interface DovecotOptions {
  /** Also serve Dovecot's POP3, on one pop3s listener (implicit TLS) on a free loopback port. */
  readonly pop3s?: boolean;
  /** More dovecot.conf lines, appended last (e.g. "mail_debug = yes"). */
  readonly extraSettings?: readonly string[];
}

/** [dovecot] and [delivery] for a PosternInstance: IMAP, IMAPS and LMTP on free loopback ports. */
export async function dovecotListeners(): Promise<{
  dovecot: { imap: string[]; imaps: string[] };
  delivery: { lmtp: string };
}> {
  const [imap, imaps, lmtp] = [await freePort(), await freePort(), await freePort()];
  return {
    dovecot: { imap: [`127.0.0.1:${imap}`], imaps: [`127.0.0.1:${imaps}`] },
    delivery: { lmtp: `127.0.0.1:${lmtp}` },
  };
}

/** Where the private instance listens: the first address of each kind in the Postern config. */
export interface DovecotEndpoints {
  readonly imap?: Endpoint;
  readonly imaps?: Endpoint;
  readonly lmtp?: Endpoint;
  readonly pop3s?: Endpoint;
  /** The auth service's client socket (startSasl). */
  readonly sasl?: Endpoint;
}

/** A TCP listener, or (LMTP only) a unix socket. */
export type Endpoint = { readonly host: string; readonly port: number } | { readonly path: string };

export class TestDovecot {
  readonly configPath: string;
  readonly logFile: string;
  private exited = false;
  private readonly exitStatus: Promise<void>;
  private readonly output: string[] = [];
  private readonly onExit = (): void => {
    if (!this.exited) this.child.kill('SIGTERM');
  };

  private constructor(
    readonly root: string,
    /** Dovecot's instance_name: its processes are titled "dovecot-<name>/...". */
    readonly name: string,
    readonly endpoints: DovecotEndpoints,
    private readonly child: ChildProcess,
  ) {
    this.configPath = join(root, 'dovecot.conf');
    this.logFile = join(root, 'dovecot.log');
    this.exitStatus = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exitStatus.then(() => (this.exited = true));
    for (const stream of [child.stdout, child.stderr]) stream?.setEncoding('utf8').on('data', (s: string) => this.output.push(s));
    process.once('exit', this.onExit);
  }

  /** Why this machine cannot run one (undefined: it can). */
  static available(options: DovecotOptions = {}): string | undefined {
    if (process.getuid?.() !== 0) return "not root (Dovecot's master must start as root)";
    for (const program of [...PROGRAMS, ...(options.pop3s ? [POP3] : [])]) {
      if (!existsSync(program.path)) return `${program.path} is missing (apt-get install --no-install-recommends ${program.pkg})`;
    }
    return undefined;
  }

  /**
   * Writes the configuration that `postern dovecot config` and `postern dovecot sql` print for
   * the instance, checks it with doveconf, starts `dovecot -F` and resolves once every listener
   * accepts connections.
   */
  static async start(instance: PosternInstance, options: DovecotOptions = {}): Promise<TestDovecot> {
    const missing = TestDovecot.available(options);
    if (missing) throw new Error(`cannot start Dovecot: ${missing}`);
    const root = mkdtempSync(join(tmpdir(), 'postern-dovecot-'));
    chmodSync(root, 0o755);
    const name = `postern-test-${basename(root).slice(-6).toLowerCase()}`;
    try {
      const pop3sPort = options.pop3s ? await freePort() : undefined;
      const endpoints: DovecotEndpoints = {
        ...listenersOf(instance.configPath),
        ...(pop3sPort === undefined ? {} : { pop3s: { host: '127.0.0.1', port: pop3sPort } }),
      };
      const sqlFile = join(root, 'postern-sql.conf.ext');
      writeFileSync(sqlFile, await instance.cliOk(['dovecot', 'sql']));
      const conf = await instance.cliOk(['dovecot', 'config', '--sql-file', sqlFile]);
      for (const dir of ['run', 'state']) mkdirSync(join(root, dir), { mode: 0o755 });
      return await TestDovecot.launch(root, name, endpoints, conf + privateSettings(root, name, pop3sPort, options));
    } catch (err) {
      rmSync(root, { recursive: true, force: true });
      throw err;
    }
  }

  /** Why this machine cannot run startSasl() (undefined: it can). */
  static saslAvailable(): string | undefined {
    if (process.getuid?.() !== 0) return "not root (Dovecot's master must start as root)";
    for (const program of [PROGRAMS[0]!, PROGRAMS[3]!]) {
      if (!existsSync(program.path)) return `${program.path} is missing (apt-get install --no-install-recommends ${program.pkg})`;
    }
    return undefined;
  }

  /**
   * Dovecot as Postfix's SASL server alone (smtpd_sasl_type = dovecot): no mail protocol, only
   * the auth service, answering on a unix socket that `socketUser` (Postfix's account) may open.
   * The passwords are hashed by doveadm with `scheme` at Dovecot's defaults (ARGON2I: libsodium's
   * "interactive" level, 32 MiB and 4 passes; SSHA512: one salted SHA-512) and kept in an SQLite
   * passdb. SQLite is a blocking driver, so Dovecot looks the account up and verifies the hash in
   * its auth-worker processes, several at once; a passwd-file passdb would verify in the single
   * auth process, which under 50 concurrent ARGON2I logins stops answering new Postfix
   * connections in time (smtpd: "fatal: no SASL authentication mechanisms"). No auth cache: on a
   * hit Dovecot verifies the cached hash again, in the auth process.
   */
  static async startSasl(
    users: readonly { readonly username: string; readonly password: string }[],
    socketUser: string,
    scheme: 'ARGON2I' | 'SSHA512',
  ): Promise<TestDovecot> {
    const missing = TestDovecot.saslAvailable();
    if (missing) throw new Error(`cannot start Dovecot: ${missing}`);
    const root = mkdtempSync(join(tmpdir(), 'postern-dovecot-'));
    chmodSync(root, 0o755);
    const name = `postern-test-${basename(root).slice(-6).toLowerCase()}`;
    try {
      const accounts: { username: string; hash: string }[] = [];
      for (const user of users) {
        const hashed = await runTool(DOVEADM, ['pw', '-s', scheme, '-p', user.password]);
        if (hashed.code !== 0) throw new Error(`doveadm pw failed: ${hashed.stderr.trim()}`);
        accounts.push({ username: user.username, hash: hashed.stdout.trim() });
      }
      const sqlConf = writeSaslPassdb(root, accounts);
      const socket = join(root, 'auth-client');
      const conf = [
        '# Generated by test/support/dovecot.ts: Dovecot as the SASL server of a private Postfix.',
        'protocols =',
        'ssl = no',
        'auth_mechanisms = plain login',
        'passdb {',
        '  driver = sql',
        `  args = ${sqlConf}`,
        '}',
        '# SASL needs no userdb, but Dovecot wants one configured.',
        'userdb {',
        '  driver = static',
        `  args = uid=${socketUser} gid=${socketUser} home=/nonexistent`,
        '}',
        'service auth {',
        `  unix_listener ${socket} {`,
        '    mode = 0660',
        `    user = ${socketUser}`,
        `    group = ${socketUser}`,
        '  }',
        '}',
      ].join('\n');
      return await TestDovecot.launch(root, name, { sasl: { path: socket } }, conf + privateSettings(root, name, undefined, {}));
    } catch (err) {
      rmSync(root, { recursive: true, force: true });
      throw err;
    }
  }

  /** The path of the SASL auth socket of an instance from startSasl(). */
  get saslSocket(): string {
    const endpoint = this.endpoints.sasl;
    if (!endpoint || !('path' in endpoint)) throw new Error('this Dovecot was not started by startSasl()');
    return endpoint.path;
  }

  /** Checks the configuration with doveconf, starts `dovecot -F`, resolves once every listener accepts. */
  private static async launch(root: string, name: string, endpoints: DovecotEndpoints, conf: string): Promise<TestDovecot> {
    const configPath = join(root, 'dovecot.conf');
    writeFileSync(configPath, conf);
    const check = await runTool(DOVECONF, ['-n', '-c', configPath]);
    if (check.code !== 0) throw new Error(`doveconf refuses the configuration: ${check.stderr.trim()}\n${conf}`);
    const child = spawn(DOVECOT, ['-F', '-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const dovecot = new TestDovecot(root, name, endpoints, child);
    try {
      await dovecot.waitUntilAccepting();
    } catch (err) {
      await dovecot.stop();
      throw err;
    }
    return dovecot;
  }

  /** The master's process id (`dovecot -F`); its children are the instance's services. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** A listener's TCP port (throws if the instance has none of that kind). */
  port(kind: keyof DovecotEndpoints): number {
    const endpoint = this.endpoints[kind];
    if (!endpoint || !('port' in endpoint)) throw new Error(`this Dovecot has no TCP ${kind} listener (${JSON.stringify(this.endpoints)})`);
    return endpoint.port;
  }

  /** Dovecot's log (its log_path) and whatever the master wrote before it opened it. */
  log(): string {
    const file = existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
    return `${this.output.join('')}${file}`;
  }

  /** Polls the log until a line matches; throws with the log's tail after `timeoutMs`. */
  async waitForLog(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.log().split('\n').find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in Dovecot's log\n${this.logTail()}`);
      await sleep(50);
    }
  }

  logTail(lines = 30): string {
    return this.log().trimEnd().split('\n').slice(-lines).join('\n');
  }

  /**
   * SIGTERM to the master, which stops its children; waits until no process of this instance is
   * left (SIGKILL for any that outlive 10 s), then removes the instance's directory.
   */
  async stop(): Promise<void> {
    process.removeListener('exit', this.onExit);
    if (!this.exited) this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exitStatus;
    clearTimeout(killer);
    const deadline = Date.now() + 10_000;
    for (let left = this.processes(); left.length > 0; left = this.processes()) {
      if (Date.now() > deadline) {
        for (const pid of left) process.kill(pid, 'SIGKILL');
        break;
      }
      await sleep(50);
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  /** PIDs of this instance's processes, found by their titles ("dovecot-<name>/imap"). */
  processes(): number[] {
    const prefixes = [`${this.name}/`, `dovecot-${this.name}/`];
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      if (prefixes.some((p) => cmdline.startsWith(p))) pids.push(Number(entry));
    }
    return pids;
  }

  private async waitUntilAccepting(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const targets = Object.values(this.endpoints).filter((t): t is Endpoint => t !== undefined);
    for (const target of targets) {
      while (!(await canConnect(target))) {
        if (this.exited) throw new Error(`Dovecot exited before accepting connections\n${this.logTail()}`);
        if (Date.now() > deadline) throw new Error(`Dovecot does not accept on ${JSON.stringify(target)}\n${this.logTail()}`);
        await sleep(50);
      }
    }
  }
}

/** The listeners the Postern config gives Dovecot (the first address of each kind). */
function listenersOf(configPath: string): DovecotEndpoints {
  const config = parse(readFileSync(configPath, 'utf8')) as {
    dovecot?: { imap?: string[]; imaps?: string[] };
    delivery?: { lmtp?: string };
  };
  const tcp = (address: string | undefined): Endpoint | undefined => {
    if (address === undefined || address === '') return undefined;
    const { host, port } = parseListenAddress(address);
    return { host, port };
  };
  const lmtp = config.delivery?.lmtp ?? '';
  const endpoints = {
    imap: tcp(config.dovecot?.imap?.[0]),
    imaps: tcp(config.dovecot?.imaps?.[0]),
    lmtp: lmtp.startsWith('unix:') ? { path: lmtp.slice('unix:'.length) } : tcp(lmtp),
  };
  return Object.fromEntries(Object.entries(endpoints).filter(([, e]) => e !== undefined)) as DovecotEndpoints;
}

/** What a private instance adds to the generated dovecot.conf: later settings override earlier ones. */
function privateSettings(root: string, name: string, pop3sPort: number | undefined, options: DovecotOptions): string {
  const lines = [
    '',
    '# Test-only settings of a private instance (test/support/dovecot.ts): its own sockets, state',
    "# and log, so that it shares nothing with the system's Dovecot or another test's.",
    `base_dir = ${join(root, 'run')}`,
    `state_dir = ${join(root, 'state')}`,
    `log_path = ${join(root, 'dovecot.log')}`,
    `instance_name = ${name}`,
    '# Why a login failed, in the log a failing test prints.',
    'auth_verbose = yes',
  ];
  if (pop3sPort !== undefined) {
    lines.push(
      '# Dovecot POP3 on the same Maildirs (the POP3 benchmark compares it with Postern).',
      'protocols = $protocols pop3',
      'service pop3-login {',
      '  inet_listener pop3 {',
      '    port = 0',
      '  }',
      '  inet_listener pop3s {',
      '    address = 127.0.0.1',
      `    port = ${pop3sPort}`,
      '    ssl = yes',
      '  }',
      '}',
    );
  }
  lines.push(...(options.extraSettings ?? []), '');
  return lines.join('\n');
}

/** startSasl()'s accounts: an SQLite file read by the auth workers, and the sql file naming it. */
function writeSaslPassdb(root: string, accounts: readonly { username: string; hash: string }[]): string {
  const dbFile = join(root, 'users.db');
  const db = new Database(dbFile);
  try {
    db.exec('CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO users (username, password) VALUES (?, ?)');
    for (const a of accounts) insert.run(a.username, a.hash);
  } finally {
    db.close();
  }
  const sqlConf = join(root, 'sasl-sql.conf.ext');
  // %u is quoted by the driver (a ' becomes ''); the hash names its scheme ("{ARGON2I}...").
  const query = "password_query = SELECT username AS user, password FROM users WHERE username = '%u'";
  writeFileSync(sqlConf, ['driver = sqlite', `connect = ${dbFile}`, query, ''].join('\n'));
  return sqlConf;
}

function canConnect(target: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = 'path' in target ? connect(target.path) : connect(target.port, target.host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
