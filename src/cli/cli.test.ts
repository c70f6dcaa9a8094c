// Runs the real `bin/postern.js` as a child process, as an operator would.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runPostern, type CliResult } from '../../test/support/postern-process.js';
import { verifyPassword } from '../auth/password.js';

const isRoot = process.getuid?.() === 0;

let dir: string;
let config: string;

function postern(args: readonly string[], options: { input?: string; cwd?: string } = {}): Promise<CliResult> {
  return runPostern(args, options.cwd ?? dir, options.input);
}

/** Runs an admin command against the test config. */
function admin(...args: string[]): Promise<CliResult> {
  return postern([...args, '--config', config]);
}

async function succeeds(args: string[], input?: string): Promise<string> {
  const r = await postern([...args, '--config', config], input === undefined ? {} : { input });
  assert.equal(r.stderr, '', `stderr of postern ${args.join(' ')}`);
  assert.equal(r.code, 0, `exit code of postern ${args.join(' ')}`);
  return r.stdout;
}

/** Exit code 1 and exactly one line on stderr, "postern: ...", without a stack trace. */
function assertFailure(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 1, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^postern: [^\n]+\n$/, 'one line on stderr');
  assert.doesNotMatch(r.stderr, /\bat .*:\d+:\d+/, 'no stack frames');
  assert.match(r.stderr, message);
}

/** The password hash stored for a user, read from a copy of the database (the CLI has exited). */
function storedHash(address: string): string | undefined {
  const copy = join(dir, `copy-${Date.now()}-${Math.random()}.db`);
  copyFileSync(join(dir, 'data', 'postern.db'), copy);
  const db = new Database(copy, { readonly: true });
  try {
    const row = db.prepare('SELECT password_hash FROM users WHERE address = ?').get(address) as
      | { password_hash: string }
      | undefined;
    return row?.password_hash;
  } finally {
    db.close();
    rmSync(copy, { force: true });
  }
}

function storedColumn(address: string, column: 'scram_sha1' | 'scram_sha256' | 'cram_md5'): string | null | undefined {
  const copy = join(dir, `copy-${Date.now()}-${Math.random()}.db`);
  copyFileSync(join(dir, 'data', 'postern.db'), copy);
  const db = new Database(copy, { readonly: true });
  try {
    const row = db.prepare(`SELECT ${column} AS v FROM users WHERE address = ?`).get(address) as { v: string | null } | undefined;
    return row?.v;
  } finally {
    db.close();
    rmSync(copy, { force: true });
  }
}

/** Which SASL secrets are stored for the account. */
function storedScramColumns(address: string): { sha1: boolean; sha256: boolean; cram: boolean } {
  return {
    sha1: typeof storedColumn(address, 'scram_sha1') === 'string',
    sha256: typeof storedColumn(address, 'scram_sha256') === 'string',
    cram: typeof storedColumn(address, 'cram_md5') === 'string',
  };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-cli-'));
  // As root the CLI becomes "nobody", which must be able to enter the directory (mkdtemp: 0700).
  chmodSync(dir, 0o755);
  config = join(dir, 'postern.toml');
  writeFileSync(config, 'data_dir = "data"\n[log]\nlevel = "warn"\n');
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('postern CLI', () => {
  test('--help and --version exit 0', async () => {
    const help = await postern(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: postern/);
    assert.match(help.stdout, /domain/);
    const version = await postern(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const sub = await postern(['user', 'add', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--password-stdin/);
  });

  test('check-config: a file, the built-in defaults, a bad key, a missing file', async () => {
    assert.equal(await succeeds(['check-config']), `config OK: ${config}\n`);

    const empty = mkdtempSync(join(dir, 'empty-'));
    const defaults = await postern(['check-config'], { cwd: empty });
    assert.equal(defaults.code, 0);
    assert.equal(defaults.stdout, 'config OK: built-in defaults\n');

    const bad = join(dir, 'bad.toml');
    writeFileSync(bad, '[listen]\nsmtp = ["0.0.0.0:25"]\n');
    assertFailure(await postern(['check-config', '--config', bad]), /unknown key "listen\.smtp" \(allowed: mx, submission, submissions, pop3, pop3s, http, https, metrics\)/);
    assertFailure(await postern(['check-config', '--config', join(dir, 'nope.toml')]), /config file ".*nope\.toml" not found/);
  });

  test('./postern.toml is used when --config is not given', async () => {
    const out = await postern(['domain', 'list']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(statSync(join(dir, 'data', 'postern.db')).isFile(), true);
  });

  test('--config may come before the command, as --config F or --config=F', async () => {
    assert.equal((await postern(['--config', config, 'domain', 'add', 'early.test'])).code, 0);
    const listed = await postern([`--config=${config}`, 'domain', 'list']);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, /^early\.test$/m);
    assert.equal((await postern(['--config', config, 'domain', 'remove', 'early.test'])).code, 0);
  });

  test('domain add, list, --json, remove', async () => {
    assert.equal(await succeeds(['domain', 'add', 'Example.TEST']), 'added domain example.test\n');
    assert.equal(await succeeds(['domain', 'add', 'other.test']), 'added domain other.test\n');
    assert.equal(await succeeds(['domain', 'list']), 'example.test\nother.test\n');
    const json = JSON.parse(await succeeds(['domain', 'list', '--json'])) as { name: string; createdAt: string }[];
    assert.deepEqual(
      json.map((d) => d.name),
      ['example.test', 'other.test'],
    );
    assert.ok(!Number.isNaN(Date.parse(json[0]?.createdAt ?? '')));
    assertFailure(await admin('domain', 'add', 'example.test'), /^postern: domain "example\.test" already exists\n$/);
    assertFailure(await admin('domain', 'add', 'not a domain'), /is not a valid domain name/);
    assert.equal(await succeeds(['domain', 'remove', 'other.test']), 'removed domain other.test\n');
    assertFailure(await admin('domain', 'remove', 'other.test'), /domain "other\.test" does not exist/);
  });

  test('user add with --password-stdin, list, passwd, remove', async () => {
    assert.equal(
      await succeeds(['user', 'add', 'Alice@example.test', '--password-stdin'], 'first secret\r\nsecond line\n'),
      'added user alice@example.test\n',
    );
    const hash = storedHash('alice@example.test');
    assert.ok(hash, 'stored');
    assert.equal(await verifyPassword('first secret', hash), true, 'the first line, CR/LF stripped');

    const generated = await succeeds(['user', 'add', 'bob@example.test']);
    const m = /^created bob@example\.test with password: (\S{20})\n$/.exec(generated);
    assert.ok(m, generated);
    assert.equal(await verifyPassword(m[1] as string, storedHash('bob@example.test') as string), true);

    const scram = 'PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS';
    assert.equal(await succeeds(['user', 'list']), `alice@example.test  ${scram}\nbob@example.test    ${scram}\n`);
    const json = JSON.parse(await succeeds(['user', 'list', '--json', '--domain', 'example.test'])) as {
      mechanisms: string[];
    }[];
    assert.deepEqual(
      json.map((u) => Object.keys(u).sort()),
      [
        ['address', 'createdAt', 'mechanisms'],
        ['address', 'createdAt', 'mechanisms'],
      ],
      'no password hashes in the output',
    );
    assert.deepEqual(json[0]?.mechanisms, scram.split(' '));
    assert.deepEqual(storedScramColumns('alice@example.test'), { sha1: true, sha256: true, cram: false });
    assert.equal(await succeeds(['user', 'list', '--domain', 'none.test']), '');

    assert.equal(
      await succeeds(['user', 'passwd', 'alice@example.test', '--password-stdin'], 'new secret'),
      'changed the password of alice@example.test\n',
    );
    assert.equal(await verifyPassword('new secret', storedHash('alice@example.test') as string), true);
    const changed = await succeeds(['user', 'passwd', 'alice@example.test']);
    const p = /^changed the password of alice@example\.test to: (\S{20})\n$/.exec(changed);
    assert.ok(p, changed);
    assert.equal(await verifyPassword(p[1] as string, storedHash('alice@example.test') as string), true);

    assert.equal(await succeeds(['user', 'remove', 'bob@example.test']), 'removed user bob@example.test\n');
    assert.match(await succeeds(['user', 'list']), /^alice@example\.test  PLAIN /);
  });

  test('[auth] cram_md5 = true stores the CRAM-MD5 secret for passwords set from then on', async () => {
    const cramConfig = join(dir, 'cram.toml');
    writeFileSync(cramConfig, 'data_dir = "data"\n[auth]\ncram_md5 = true\nscram_iterations = 5000\n[log]\nlevel = "warn"\n');
    const run = (args: string[], input = 'cram pass\n') => postern([...args, '--config', cramConfig], { input });
    assert.equal((await run(['user', 'add', 'cram@example.test', '--password-stdin'])).code, 0);
    assert.deepEqual(storedScramColumns('cram@example.test'), { sha1: true, sha256: true, cram: true });
    const list = await run(['user', 'list', '--json']);
    const cram = (JSON.parse(list.stdout) as { address: string; mechanisms: string[] }[]).find(
      (u) => u.address === 'cram@example.test',
    );
    assert.ok(cram?.mechanisms.includes('CRAM-MD5'));
    assert.match(storedColumn('cram@example.test', 'scram_sha256') ?? '', /^SCRAM-SHA-256\$5000:/);
    // Back to the default config: a new password drops the password-equivalent secret.
    await succeeds(['user', 'passwd', 'cram@example.test', '--password-stdin'], 'other\n');
    assert.deepEqual(storedScramColumns('cram@example.test'), { sha1: true, sha256: true, cram: false });
    await succeeds(['user', 'remove', 'cram@example.test']);
  });

  test('a password SCRAM cannot use (control characters) is refused with one line', async () => {
    assertFailure(
      await postern(['user', 'add', 'tab@example.test', '--password-stdin', '--config', config], { input: 'a\tb\n' }),
      /control or private-use characters.*choose another password/,
    );
  });

  test('user errors: bad address, unknown domain, duplicate, empty password, unknown user', async () => {
    assertFailure(await admin('user', 'add', 'alice@'), /^postern: "alice@" is not a valid address\n$/);
    assertFailure(
      await admin('user', 'add', 'x@nowhere.test'),
      /domain "nowhere\.test" is not a local domain; add it first with: postern domain add nowhere\.test/,
    );
    assertFailure(
      await postern(['user', 'add', 'carol@example.test', '--password-stdin', '--config', config], { input: '\n' }),
      /password read from stdin is empty/,
    );
    assertFailure(
      await postern(['user', 'add', 'carol@example.test', '--password-stdin', '--config', config], { input: '' }),
      /password read from stdin is empty/,
    );
    await succeeds(['user', 'add', 'dave@example.test', '--password-stdin'], 'pw\n');
    assertFailure(await admin('user', 'add', 'DAVE@example.test'), /user "dave@example\.test" already exists/);
    assertFailure(await admin('user', 'remove', 'zed@example.test'), /user "zed@example\.test" does not exist/);
    assertFailure(
      await postern(['user', 'passwd', 'zed@example.test', '--password-stdin', '--config', config], { input: 'x\n' }),
      /user "zed@example\.test" does not exist; add it with: postern user add zed@example\.test/,
    );
    await succeeds(['user', 'remove', 'dave@example.test']);
  });

  test('alias add (with a catch-all), list, --json, remove one target or all', async () => {
    assert.equal(
      await succeeds(['alias', 'add', 'Sales@example.test', 'alice@example.test']),
      'added alias sales@example.test -> alice@example.test\n',
    );
    await succeeds(['alias', 'add', 'sales@example.test', 'someone@elsewhere.test']);
    assert.equal(
      await succeeds(['alias', 'add', '@EXAMPLE.test', 'alice@example.test']),
      'added alias @example.test -> alice@example.test\n',
    );
    assert.equal(
      await succeeds(['alias', 'list']),
      '@example.test -> alice@example.test\nsales@example.test -> alice@example.test\nsales@example.test -> someone@elsewhere.test\n',
    );
    assert.deepEqual(JSON.parse(await succeeds(['alias', 'list', '--json'])), [
      { source: '@example.test', target: 'alice@example.test' },
      { source: 'sales@example.test', target: 'alice@example.test' },
      { source: 'sales@example.test', target: 'someone@elsewhere.test' },
    ]);
    assertFailure(
      await admin('alias', 'add', 'x@nowhere.test', 'alice@example.test'),
      /domain "nowhere\.test" is not a local domain; add it first with: postern domain add nowhere\.test/,
    );
    assertFailure(await admin('alias', 'add', 'x@example.test', 'not-an-address'), /"not-an-address" is not a valid address/);
    assertFailure(
      await admin('domain', 'remove', 'example.test'),
      /domain "example\.test" still has 1 user and 3 aliases; remove them first/,
    );

    assert.equal(
      await succeeds(['alias', 'remove', 'sales@example.test', 'someone@elsewhere.test']),
      'removed alias sales@example.test -> someone@elsewhere.test\n',
    );
    assert.equal(await succeeds(['alias', 'remove', '@example.test']), 'removed alias @example.test\n');
    assertFailure(await admin('alias', 'remove', '@example.test'), /alias "@example\.test" does not exist/);
    assert.equal(await succeeds(['alias', 'list']), 'sales@example.test -> alice@example.test\n');
  });

  test('usage errors from the command parser are one line too', async () => {
    assertFailure(await postern(['frob']), /^postern: unknown command 'frob'/);
    assertFailure(await postern(['domain', 'add']), /^postern: missing required argument 'name'/);
    assertFailure(await postern(['domain', 'list', '--bogus']), /^postern: unknown option '--bogus'/);
    assertFailure(await postern(['domain', 'add', 'a.test', 'b.test']), /too many arguments/);
    assertFailure(await postern(['serve', '--log-format', 'xml']), /'xml' is invalid\. Allowed choices are json, pretty/);
    const group = await postern(['domain']);
    assertFailure(group, /^postern: missing command/);
    assert.match(group.stdout, /add \[options\] <name>/, 'the help lists the subcommands');
  });

  test('a config with a bad key fails every command with one line', async () => {
    const bad = join(dir, 'bad-limits.toml');
    writeFileSync(bad, 'data_dir = "data"\n[limits]\nmax_recipients = "lots"\n');
    const expected = /limits\.max_recipients: expected a whole number >= 1, got "lots"/;
    assertFailure(await postern(['domain', 'list', '--config', bad]), expected);
    assertFailure(await postern(['user', 'add', 'a@example.test', '--config', bad]), expected);
    assertFailure(await postern(['serve', '--config', bad]), expected);
  });

  test('as root, files in data_dir belong to the service account', { skip: !isRoot && 'needs root' }, () => {
    const db = statSync(join(dir, 'data', 'postern.db'));
    const dataDir = statSync(join(dir, 'data'));
    assert.notEqual(db.uid, 0);
    assert.equal(db.uid, dataDir.uid);
    assert.equal(dataDir.mode & 0o777, 0o750);
  });
});
