// The first ten minutes of a new user, as they happen: root in a directory made by `mktemp -d`,
// `npm start` and the command it says to run next, a terminal watching the log. Each test runs
// the real bin/postern.js as a child process.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'smol-toml';
import { PosternProcess, REPO_ROOT, runPostern, type CliResult } from './support/postern-process.js';
import { SmtpClient } from './support/smtp-client.js';

const isRoot = process.getuid?.() === 0;
const rootOnly = { skip: !isRoot && 'needs root (the service account switch)' };
const NOBODY_UID = isRoot ? Number(readFileSync('/etc/passwd', 'utf8').match(/^nobody:[^:]*:(\d+):/m)?.[1]) : -1;

const temps: string[] = [];
after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** A directory as `mktemp -d` makes it: mode 0700, owned by whoever runs the tests. */
function mktempD(): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-first-'));
  temps.push(dir);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  return dir;
}

/** A config with its data_dir, ports chosen by the kernel, JSON logs unless `format` says. */
function writeConfig(path: string, dataDir: string, format?: 'auto'): void {
  writeFileSync(
    path,
    stringify({
      hostname: 'mx.first.test',
      data_dir: dataDir,
      user: '',
      listen: { mx: ['127.0.0.1:0'], submission: [], submissions: [], pop3: [], pop3s: [], http: [], https: [], metrics: [] },
      limits: { shutdown_grace: 5 },
      log: { level: 'info', format: format ?? 'json' },
    }),
  );
}

function assertOneLineError(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 1, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^postern: [^\n]+\n$/, `one line on stderr: ${JSON.stringify(r.stderr)}`);
  assert.doesNotMatch(r.stderr, /\bat .*:\d+:\d+/, 'no stack frames');
  assert.match(r.stderr, message);
}

/** Sends one message to `rcpt` on the MX and expects 250 for it. */
async function deliverOne(port: number, rcpt: string, subject: string): Promise<void> {
  const client = await SmtpClient.open(port);
  try {
    await client.command('MAIL FROM:<newcomer@remote.test>', 250);
    await client.command(`RCPT TO:<${rcpt}>`, 250);
    await client.command('DATA', 354);
    client.send(`Subject: ${subject}\r\n\r\nhello\r\n.\r\n`);
    await client.expect(250);
    await client.quit();
  } finally {
    client.destroy();
  }
}

async function waitForFile(dir: string, containing: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (existsSync(dir) && readdirSync(dir).some((f) => readFileSync(join(dir, f), 'latin1').includes(containing))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`no message with "${containing}" in ${dir}`);
}

describe('as root, in a directory the service account may not enter', () => {
  test('admin commands and serve stop with one line naming the account, the directory and both fixes; nothing is created', rootOnly, async () => {
    const root = mktempD();
    const config = join(root, 'postern.toml');
    const dataDir = join(root, 'data');
    writeConfig(config, dataDir);
    const expected = new RegExp(
      `^postern: the service account "nobody" cannot reach data_dir "${dataDir}": it may not enter "${root}" \\(mode 0700\\); ` +
        `make that directory traversable \\(chmod o\\+x ${root}\\) or set data_dir to a directory "nobody" can reach\\n$`,
    );
    assertOneLineError(await runPostern(['domain', 'add', 'example.test', '--config', config], root), expected);
    assertOneLineError(await runPostern(['serve', '--config', config], root), expected);
    assert.equal(existsSync(dataDir), false, 'data_dir was not created');
  });

  test('fix 1, data_dir elsewhere: admin commands first, then serve, with the config still in the 0700 directory', rootOnly, async () => {
    const root = mktempD();
    const elsewhere = mkdtempSync(join(tmpdir(), 'postern-first-data-'));
    temps.push(elsewhere);
    chmodSync(elsewhere, 0o755);
    const config = join(root, 'postern.toml');
    const dataDir = join(elsewhere, 'var', 'postern');
    writeConfig(config, dataDir);
    const previousUmask = process.umask(0o077); // parents Postern creates must not inherit it
    let server: PosternProcess | undefined;
    try {
      assert.equal((await runPostern(['domain', 'add', 'example.test', '--config', config], root)).stderr, '');
      const added = await runPostern(['user', 'add', 'alice@example.test', '--password-stdin', '--config', config], root, 'a long secret\n');
      assert.equal(added.code, 0, added.stderr);
      assert.equal(statSync(join(elsewhere, 'var')).mode & 0o777, 0o755);
      assert.equal(statSync(dataDir).uid, NOBODY_UID, 'data_dir belongs to the service account');
      assert.equal(statSync(join(dataDir, 'postern.db')).uid, NOBODY_UID);
      server = await PosternProcess.spawn(config);
      await deliverOne(server.port('mx'), 'alice@example.test', 'first-run-elsewhere');
      await waitForFile(join(dataDir, 'mail', 'example.test', 'alice', 'new'), 'first-run-elsewhere');
    } finally {
      process.umask(previousUmask);
      if (server) assert.equal(await server.stop(), 0);
    }
  });

  test('fix 2, the directory made traversable: serve first, then admin commands while it runs', rootOnly, async () => {
    const root = mktempD();
    chmodSync(root, 0o711); // "chmod o+x", as the error says: enterable, still not listable
    const config = join(root, 'postern.toml');
    const dataDir = join(root, 'data');
    writeConfig(config, dataDir);
    const server = await PosternProcess.spawn(config);
    try {
      assert.equal(statSync(dataDir).uid, NOBODY_UID);
      assert.equal((await runPostern(['domain', 'add', 'example.test', '--config', config], root)).stderr, '');
      const added = await runPostern(['user', 'add', 'bob@example.test', '--password-stdin', '--config', config], root, 'a long secret\n');
      assert.equal(added.code, 0, added.stderr);
      for (const file of ['postern.db', 'postern.db-wal']) {
        if (existsSync(join(dataDir, file))) assert.equal(statSync(join(dataDir, file)).uid, NOBODY_UID, file);
      }
      await deliverOne(server.port('mx'), 'bob@example.test', 'first-run-traversable');
      await waitForFile(join(dataDir, 'mail', 'example.test', 'bob', 'new'), 'first-run-traversable');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});

/** Collects a child's output; resolves `waitFor` once it has printed a match (or fails after 20 s). */
class Watched {
  output = '';
  private readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  async waitFor(pattern: RegExp): Promise<RegExpExecArray> {
    for (let i = 0; i < 400; i++) {
      const m = pattern.exec(this.output);
      if (m) return m;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail(`timed out waiting for ${pattern}; output so far:\n${this.output}`);
  }
  /**
   * SIGTERM to the process group, and to every process started with `commandLineMark` in its
   * arguments: script(1) runs its command in a session of its own, out of the group's reach.
   */
  async stop(commandLineMark: string): Promise<number | null> {
    try {
      process.kill(-this.child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    const others = processesWith(commandLineMark);
    for (const pid of others) process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 200 && processesWith(commandLineMark).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.exited;
  }
}

/** Pids whose command line contains `mark` (from /proc, so no procps is needed). */
function processesWith(mark: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(mark)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function spawnGroup(command: string, args: readonly string[], cwd: string): Watched {
  const env = { ...process.env };
  // The test runner's own npm variables would make every child look like `npm start`.
  for (const key of Object.keys(env)) if (key.startsWith('npm_') || key === 'INIT_CWD') delete env[key];
  // npm and npx are scripts for `node`: the node running these tests comes first on the PATH.
  env.PATH = `${dirname(process.execPath)}:${env.PATH ?? ''}`;
  return new Watched(spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** A 0755 temp directory with a config whose data_dir is inside it. */
function traversableSetup(format?: 'auto'): { root: string; config: string } {
  const root = mktempD();
  chmodSync(root, 0o755);
  const config = join(root, 'postern.toml');
  writeConfig(config, join(root, 'data'), format);
  return { root, config };
}

describe('first impressions', () => {
  test('npm start prints a "Next:" command that works as printed', async () => {
    const { root, config } = traversableSetup();
    const server = spawnGroup('npm', ['start', '--', '--config', config], REPO_ROOT);
    try {
      const [, next] = await server.waitFor(/^Next: (.+)$/m);
      assert.match(next!, /^node bin\/postern\.js --config \S+ domain add example\.test && echo secret \| node bin\/postern\.js --config \S+ user add alice@example\.test --password-stdin$/);
      const run = spawnGroup('sh', ['-c', next!], REPO_ROOT);
      const code = await new Promise((resolve) => run.child.once('exit', resolve));
      assert.equal(code, 0, run.output);
      const listed = await runPostern(['user', 'list', '--config', config], root);
      assert.match(listed.stdout, /alice@example\.test/);
    } finally {
      await server.stop(config);
    }
  });

  test('logs are pretty on a terminal and JSON lines in a pipe, when log.format is not set', async () => {
    const { root, config } = traversableSetup('auto');
    const serve = `${JSON.stringify(process.execPath)} bin/postern.js serve --config ${JSON.stringify(config)}`;
    // script(1) gives the server a pseudo-terminal as its standard output, as a person's shell would.
    const onTerminal = spawnGroup('script', ['-qefc', serve, '/dev/null'], REPO_ROOT);
    try {
      await onTerminal.waitFor(/Postern is listening/);
      // pino-pretty's "[time] INFO: listening", colored on a terminal.
      await onTerminal.waitFor(/INFO(\x1b\[[\d;]*m)*:\s*(\x1b\[[\d;]*m)*listening/);
      assert.doesNotMatch(onTerminal.output, /^\{"level"/m, 'no JSON lines on a terminal');
    } finally {
      await onTerminal.stop(config);
    }
    const piped = spawnGroup(process.execPath, ['bin/postern.js', 'serve', '--config', config], REPO_ROOT);
    try {
      const line = await piped.waitFor(/^\{.*"msg":"listening".*\}$/m);
      assert.ok(JSON.parse(line[0]));
    } finally {
      await piped.stop(config);
    }
    assert.ok(existsSync(join(root, 'data')));
  });
});
