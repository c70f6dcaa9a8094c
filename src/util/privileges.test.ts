import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../config/schema.js';
import { dropPrivileges, prepareDataDir, requireProgramReachable, serviceAccount } from './privileges.js';

const isRoot = process.getuid?.() === 0;
const rootOnly = { skip: !isRoot && 'needs root' };

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-priv-'));
  // mkdtemp makes it 0700, which the service account may not enter (see the tests of that below).
  chmodSync(dir, 0o755);
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function getentId(database: 'passwd' | 'group', name: string): number {
  return Number(execFileSync('getent', [database, name], { encoding: 'utf8' }).split(':')[2]);
}

describe('serviceAccount', () => {
  test('is undefined when not running as root', { skip: isRoot && 'running as root' }, () => {
    assert.equal(serviceAccount(configSchema.parse({ user: 'nobody' })), undefined);
  });

  test('empty user means "nobody"', rootOnly, () => {
    const account = serviceAccount(configSchema.parse({}));
    assert.equal(account?.user, 'nobody');
    assert.equal(account?.uid, getentId('passwd', 'nobody'));
    assert.notEqual(account?.uid, 0);
  });

  test('a named user, with its primary group or the configured one', rootOnly, () => {
    assert.deepEqual(serviceAccount(configSchema.parse({ user: 'root' })), { user: 'root', uid: 0, gid: 0 });
    const withGroup = serviceAccount(configSchema.parse({ user: 'root', group: 'nogroup' }));
    assert.equal(withGroup?.gid, getentId('group', 'nogroup'));
  });

  test('a missing user or group is a one-line error saying how to fix it', rootOnly, () => {
    assert.throws(
      () => serviceAccount(configSchema.parse({ user: 'postern-no-such-user' })),
      /^Error: user "postern-no-such-user" does not exist: create it \(useradd --system postern-no-such-user\) or set user = "\.\.\." in the config$/,
    );
    assert.throws(
      () => serviceAccount(configSchema.parse({ user: 'root', group: 'postern-no-such-group' })),
      /^Error: group "postern-no-such-group" does not exist: create it/,
    );
  });
});

describe('prepareDataDir', () => {
  test('creates data_dir (and parents) with mode 0750', () => {
    const dataDir = join(dir, 'a', 'b', 'data');
    prepareDataDir(dataDir, undefined);
    assert.equal(statSync(dataDir).mode & 0o777, 0o750);
    assert.ok(statSync(join(dir, 'a', 'b')).isDirectory());
    prepareDataDir(dataDir, undefined); // again: no error when it exists
  });

  test('hands files root created to the account, without following links', rootOnly, () => {
    const nobody = { user: 'nobody', uid: getentId('passwd', 'nobody'), gid: getentId('group', 'nogroup') };
    const outside = join(dir, 'outside.txt');
    writeFileSync(outside, 'root only');
    const dataDir = join(dir, 'owned');
    mkdirSync(join(dataDir, 'mail', 'example.test'), { recursive: true });
    writeFileSync(join(dataDir, 'postern.db'), '');
    writeFileSync(join(dataDir, 'mail', 'example.test', 'msg'), 'x');
    symlinkSync(outside, join(dataDir, 'planted-symlink'));
    const outsideDir = join(dir, 'outside-dir');
    mkdirSync(outsideDir);
    writeFileSync(join(outsideDir, 'secret'), 'root only');
    symlinkSync(outsideDir, join(dataDir, 'mail', 'planted-dir-link'));
    linkSync(outside, join(dataDir, 'planted-hardlink'));

    const cwd = process.cwd();
    prepareDataDir(dataDir, nobody);

    for (const p of ['', 'postern.db', 'mail', 'mail/example.test', 'mail/example.test/msg', 'planted-symlink']) {
      const st = lstatSync(join(dataDir, p));
      assert.equal(st.uid, nobody.uid, p);
      assert.equal(st.gid, nobody.gid, p);
    }
    assert.equal(statSync(outside).uid, 0, 'the symlink and hard link targets stay root-owned');
    assert.equal(statSync(outsideDir).uid, 0, 'a linked directory is not entered');
    assert.equal(statSync(join(outsideDir, 'secret')).uid, 0);
    assert.equal(process.cwd(), cwd, 'the walk restores the working directory');
  });
});

describe('prepareDataDir: can the account reach data_dir?', () => {
  const nobody = () => ({ user: 'nobody', uid: getentId('passwd', 'nobody'), gid: getentId('group', 'nogroup') });

  test('parents it creates are 0755 whatever the umask, so the account can pass them', rootOnly, () => {
    const old = process.umask(0o077);
    try {
      const dataDir = join(dir, 'umask', 'deeper', 'data');
      prepareDataDir(dataDir, nobody());
      assert.equal(statSync(join(dir, 'umask')).mode & 0o777, 0o755);
      assert.equal(statSync(join(dir, 'umask', 'deeper')).mode & 0o777, 0o755);
      assert.equal(statSync(dataDir).uid, nobody().uid);
    } finally {
      process.umask(old);
    }
  });

  test('a 0700 parent (as mktemp -d makes): one line naming the account, the directory and both fixes; nothing created', rootOnly, () => {
    const closed = mkdtempSync(join(dir, 'closed-'));
    const dataDir = join(closed, 'sub', 'data');
    assert.throws(
      () => prepareDataDir(dataDir, nobody()),
      (err: Error) => {
        assert.equal(
          err.message,
          `the service account "nobody" cannot reach data_dir "${dataDir}": it may not enter "${closed}" (mode 0700); ` +
            `make that directory traversable (chmod o+x ${closed}) or set data_dir to a directory "nobody" can reach`,
        );
        return true;
      },
    );
    assert.equal(existsSync(join(closed, 'sub')), false, 'nothing was created');
  });

  test('of two directories in the way, the outer one is named first', rootOnly, () => {
    const outer = mkdtempSync(join(dir, 'outer-'));
    const inner = mkdtempSync(join(outer, 'inner-'));
    assert.throws(() => prepareDataDir(join(inner, 'data'), nobody()), new RegExp(`it may not enter "${outer}" `));
  });

  test('the group bit counts when the directory is in the account\'s group', rootOnly, () => {
    const account = nobody();
    const grouped = join(dir, 'grouped');
    mkdirSync(grouped);
    chownSync(grouped, 0, account.gid);
    chmodSync(grouped, 0o710);
    prepareDataDir(join(grouped, 'data'), account);
    chmodSync(grouped, 0o700);
    assert.throws(() => prepareDataDir(join(grouped, 'data2'), account), /it may not enter ".*grouped" \(mode 0700\); make that directory traversable \(chmod g\+x /);
  });

  test('a symlinked parent is judged by where it leads', rootOnly, () => {
    const closed = mkdtempSync(join(dir, 'target-'));
    const link = join(dir, 'link-to-closed');
    symlinkSync(closed, link);
    assert.throws(() => prepareDataDir(join(link, 'data'), nobody()), new RegExp(`it may not enter "${closed}"`));
  });

  test("Postern's own files in a directory the account may not enter: one line, with both fixes", rootOnly, () => {
    const closed = mkdtempSync(join(dir, 'home-'));
    const program = join(closed, 'postern');
    mkdirSync(program, { mode: 0o755 });
    assert.throws(
      () => requireProgramReachable(nobody(), program),
      (err: Error) => {
        assert.equal(
          err.message,
          `the service account "nobody" cannot read Postern's own files in "${program}": it may not enter "${closed}" (mode 0700); ` +
            `make that directory traversable (chmod o+x ${closed}) or install Postern where "nobody" can read it`,
        );
        return true;
      },
    );
    chmodSync(closed, 0o711);
    requireProgramReachable(nobody(), program);
    requireProgramReachable(nobody()); // this checkout, which the tests' server processes run from
  });

  test('root as the service account, or not root at all: no check', () => {
    const closed = mkdtempSync(join(dir, 'mine-'));
    prepareDataDir(join(closed, 'data'), isRoot ? { user: 'root', uid: 0, gid: 0 } : undefined);
    assert.ok(statSync(join(closed, 'data')).isDirectory());
  });
});

describe('dropPrivileges', () => {
  test('undefined (not root) changes nothing', () => {
    const uid = process.getuid?.();
    dropPrivileges(undefined);
    assert.equal(process.getuid?.(), uid);
  });

  test('switches groups, gid and uid (in a child process)', rootOnly, () => {
    const module = fileURLToPath(new URL('./privileges.js', import.meta.url));
    const script = `
      const { dropPrivileges } = await import(${JSON.stringify(module)});
      dropPrivileges({ user: 'nobody', uid: 65534, gid: 65534 });
      console.log([process.getuid(), process.getgid(), process.getgroups().join(',')].join(' '));
      try { process.setuid(0); console.log('regained root'); } catch { console.log('cannot regain root'); }
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(out, '65534 65534 65534\ncannot regain root\n');
  });
});
