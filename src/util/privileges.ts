// Running as an unprivileged account. Started as root (to bind ports 25/465/587), the server and
// the admin CLI first make data_dir ready for the configured account (check it can be reached,
// create it, hand it over), then switch to that account before opening anything in it, so every
// file there belongs to the account the server runs as, whoever ran the command.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The config's `user` and `group` keys ("" for both: nobody, and its group). */
export interface AccountNames {
  readonly user: string;
  readonly group: string;
}

export interface ServiceAccount {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
}

/** The account to switch to, or undefined when we are not root (there is nothing to switch). */
export function serviceAccount(config: AccountNames): ServiceAccount | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const name = config.user === '' ? 'nobody' : config.user;
  const user = lookupUser(name);
  if (user === undefined) {
    throw new Error(
      config.user === ''
        ? `user "nobody" does not exist: create a dedicated user (useradd --system postern) and set user = "postern" in the config`
        : `user "${name}" does not exist: create it (useradd --system ${name}) or set user = "..." in the config`,
    );
  }
  return { user: name, uid: user.uid, gid: groupOf(config, name, user.gid) };
}

function groupOf(config: AccountNames, userName: string, primaryGid: number): number {
  if (config.group !== '') {
    const gid = lookupGroup(config.group);
    if (gid === undefined) {
      throw new Error(
        `group "${config.group}" does not exist: create it (groupadd --system ${config.group}) or set group = "" in the config to use the primary group of "${userName}"`,
      );
    }
    return gid;
  }
  // "nobody" gets "nogroup" where that exists (Debian), so it shares no group with real users.
  if (config.user === '') return lookupGroup('nogroup') ?? primaryGid;
  return primaryGid;
}

/**
 * Creates data_dir (mode 0750: mail is private) and, when we are root, hands everything in it to
 * the service account, so files root created earlier (say, by `postern domain add` before the
 * server first ran) become usable by the server.
 *
 * As root, the account must also be able to reach data_dir once we have switched to it: a parent
 * it may not enter (mktemp -d makes 0700 directories; /root is 0700) would make every later open
 * fail with EACCES, far from its cause. That is checked first, before anything is created, and is
 * one error naming the account, the directory in the way and the two fixes. Parents we create
 * ourselves are made 0755 whatever root's umask, so they never become that obstacle.
 * Every error's message is a whole sentence for the operator.
 */
export function prepareDataDir(dataDir: string, account: ServiceAccount | undefined): void {
  const target = resolve(dataDir);
  if (account) requireReachable(target, account);
  try {
    createParents(dirname(target));
    mkdirSync(target, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new Error(`cannot create data_dir "${dataDir}": ${errnoText(err)}`, { cause: err });
  }
  if (account) chownTree(target, account);
}

function createParents(dir: string): void {
  if (existsSync(dir)) return;
  createParents(dirname(dir));
  mkdirSync(dir);
  chmodSync(dir, 0o755);
}

/** The installation: this file is <root>/dist/src/util/privileges.js. */
const PROGRAM_DIR = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Postern's own files must stay readable after the switch: some are loaded only when first used
 * (better-sqlite3's native binding, at the first open of the store), and a checkout under /root
 * would make that load fail as "Cannot find module", far from its cause.
 */
export function requireProgramReachable(account: ServiceAccount | undefined, programDir = PROGRAM_DIR): void {
  if (!account || account.uid === 0) return;
  const blocked = firstBlocked(resolve(programDir), account);
  if (!blocked) return;
  throw new Error(
    `the service account "${account.user}" cannot read Postern's own files in "${programDir.replace(/\/$/, '')}": ` +
      `it may not enter "${blocked.dir}" (mode ${modeText(blocked.stat)}); make that directory traversable ` +
      `(chmod ${permissionClass(blocked.stat, account)}+x ${blocked.dir}) or install Postern where "${account.user}" can read it`,
  );
}

/** data_dir's existing ancestors must be enterable; data_dir itself is about to be handed over. */
function requireReachable(dataDir: string, account: ServiceAccount): void {
  if (account.uid === 0) return;
  let existing = dirname(dataDir);
  while (!existsSync(existing)) existing = dirname(existing);
  const blocked = firstBlocked(existing, account);
  if (!blocked) return;
  throw new Error(
    `the service account "${account.user}" cannot reach data_dir "${dataDir}": it may not enter "${blocked.dir}" ` +
      `(mode ${modeText(blocked.stat)}); make that directory traversable (chmod ${permissionClass(blocked.stat, account)}+x ${blocked.dir}) ` +
      `or set data_dir to a directory "${account.user}" can reach`,
  );
}

/**
 * Walks the path as the kernel will when the account opens a file below it, checking the search
 * (x) bit that applies to the account: owner, else group (the account has exactly one group once
 * switched, see dropPrivileges), else other. A symlink is reached through its target, so the
 * target's path is the one walked, from the top down: the first directory in the way is named.
 */
function firstBlocked(path: string, account: ServiceAccount): { dir: string; stat: Stats } | undefined {
  const chain: string[] = [];
  for (let dir = realpathSync(path); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dir === dirname(dir)) break;
  }
  for (const dir of chain) {
    const stat = statSync(dir);
    if (!mayEnter(stat, account)) return { dir, stat };
  }
  return undefined;
}

function mayEnter(stat: Stats, account: ServiceAccount): boolean {
  if (stat.uid === account.uid) return (stat.mode & 0o100) !== 0;
  if (stat.gid === account.gid) return (stat.mode & 0o010) !== 0;
  return (stat.mode & 0o001) !== 0;
}

function modeText(stat: Stats): string {
  return (stat.mode & 0o777).toString(8).padStart(4, '0');
}

function permissionClass(stat: Stats, account: ServiceAccount): 'u' | 'g' | 'o' {
  return stat.uid === account.uid ? 'u' : stat.gid === account.gid ? 'g' : 'o';
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'ENOTDIR') return 'a part of the path is a file, not a directory';
  if (e.code === 'EROFS') return 'read-only file system';
  return e.message ?? String(err);
}

/**
 * The account can write in data_dir, so while root walks it, the account could swap a directory
 * for a symlink (data/mail -> /etc) and have root chown what lies behind it. Hence the walk
 * changes into each directory and checks it is still the inode it looked at, then touches only
 * single names with lstat/lchown, which never follow a final symlink.
 */
function chownTree(dataDir: string, account: ServiceAccount): void {
  const previous = process.cwd();
  try {
    chownDirectory(dataDir, statSync(dataDir), account);
  } finally {
    process.chdir(previous);
  }
}

function chownDirectory(name: string, expected: Stats, account: ServiceAccount): void {
  process.chdir(name);
  const here = lstatSync('.');
  requireSameInode(here, expected, name);
  fixOwner('.', here, account);
  for (const entry of readdirSync('.')) {
    const stat = lstatSync(entry);
    if (stat.isDirectory()) {
      chownDirectory(entry, stat, account);
      process.chdir('..');
      requireSameInode(lstatSync('.'), here, name);
    } else {
      fixOwner(entry, stat, account);
    }
  }
}

function fixOwner(name: string, stat: Stats, account: ServiceAccount): void {
  if (stat.uid === account.uid && stat.gid === account.gid) return;
  // A hard link to a root-owned file elsewhere (/etc/shadow) would be handed over too: leave
  // multiply-linked files alone.
  if (!stat.isDirectory() && stat.nlink > 1) return;
  lchownSync(name, account.uid, account.gid);
}

function requireSameInode(actual: Stats, expected: Stats, name: string): void {
  if (actual.ino !== expected.ino || actual.dev !== expected.dev) {
    throw new Error(`"${name}" in the data directory changed while its owner was being fixed; run the command again`);
  }
}

/**
 * Switches to the account for good. Groups first: once the uid is no longer 0 the process may
 * not change its groups any more, and would keep root's supplementary groups.
 */
export function dropPrivileges(account: ServiceAccount | undefined): void {
  if (!account) return;
  process.setgroups?.([account.gid]);
  process.setgid?.(account.gid);
  process.setuid?.(account.uid);
}

interface PasswdEntry {
  readonly uid: number;
  readonly gid: number;
}

function lookupUser(name: string): PasswdEntry | undefined {
  const fields = databaseEntry('passwd', name);
  if (!fields) return undefined;
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

function lookupGroup(name: string): number | undefined {
  const fields = databaseEntry('group', name);
  return fields ? Number(fields[2]) : undefined;
}

/**
 * The colon-separated fields of `name` in the passwd or group database. getent asks NSS (so LDAP
 * and systemd users count); without getent, the files in /etc are read directly.
 */
function databaseEntry(database: 'passwd' | 'group', name: string): string[] | undefined {
  if (name.includes(':') || name.includes('\n')) return undefined;
  let text: string;
  try {
    text = execFileSync('getent', [database, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    // getent exits 2 for "not found"; only a missing getent falls back to the files.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
    text = readFileSync(`/etc/${database}`, 'utf8');
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4 && /^\d+$/.test(fields[2] ?? '')) return fields;
  }
  return undefined;
}
