// The Store on SQLite (better-sqlite3). The CLI and the running server open the same file at the
// same time, so: WAL (readers never wait for the writer), a busy timeout instead of SQLITE_BUSY
// errors, and a cache of directory answers that lasts only while the directory has not changed
// (read-cache.ts), so `postern domain add` is seen from the server's next turn of the event loop.
// Durability of queued message bodies is the spool's job (it fsyncs), so synchronous = NORMAL.

import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { normalizeAddress, normalizeDomain, splitAddress } from '../mail/address.js';
import { mailboxDirectory } from '../mail/mailbox-directory.js';
import { normalizeAliasSource } from './alias-source.js';
import { migrate } from './migrations.js';
import { ReadCache } from './read-cache.js';
import { SqliteSubmissionTables } from './sqlite-submission.js';
import { SqliteQueueTables } from './sqlite-queue.js';
import { SqliteQueueWriter } from './sqlite-queue-writer.js';
import { SqliteGreylistTables } from './sqlite-greylist.js';
import { fromSecretColumns, toSecretColumns, type UserSecretColumns } from './user-secret-columns.js';
import type { UserSecrets } from '../auth/user-secrets.js';
import { StoreError } from './store.js';
import type { Alias, Domain, QueueEntry, Store, User } from './store.js';
import type { SubmissionCounters, UserLimits, UserLimitsChange } from './store.js';
import type { QueueAction, QueueRequest } from './store.js';
import type { GreylistClient, GreylistPurge, GreylistSighting, GreylistTriplet } from './store.js';

export interface SqliteStoreOptions {
  /**
   * The queue table's writes on a thread of their own (sqlite-queue-writer.ts): for the server,
   * which writes that table for every message; the CLI writes it rarely and keeps one thread.
   */
  readonly queueWriterThread?: boolean;
}

export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  let db: Db;
  try {
    mkdirSync(dirname(path), { recursive: true });
    // Password hashes live here, so only the owner may read the file; SQLite creates the -wal
    // and -shm files with the database file's mode. An existing file keeps its mode.
    closeSync(openSync(path, 'a', 0o600));
    db = new Database(path);
  } catch (err) {
    throw new StoreError(`cannot open the store "${path}": ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    migrate(db, path);
    return new SqliteStore(db, options.queueWriterThread === true ? path : undefined);
  } catch (err) {
    db.close();
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot open the store "${path}": ${err instanceof Error ? err.message : String(err)}`);
  }
}

interface DomainRow {
  name: string;
  created_at: number;
}
interface UserRow extends UserSecretColumns {
  address: string;
  created_at: number;
}

class SqliteStore implements Store {
  private readonly db: Db;
  private readonly submission: SqliteSubmissionTables;
  private readonly queue: SqliteQueueTables;
  private readonly greylist: SqliteGreylistTables;
  /**
   * isLocalDomain, getUser, aliasTargets, getUserLimits and listSenderGrants, while the database
   * is unchanged (read-cache.ts).
   */
  private readonly cache: ReadCache;
  // Prepared once: preparing parses SQL, and lookups run for every RCPT TO.
  private readonly sql: {
    insertDomain: Statement<[string, number]>;
    deleteDomain: Statement<[string]>;
    selectDomains: Statement<[], DomainRow>;
    domainExists: Statement<[string], { one: number }>;
    countUsersOfDomain: Statement<[string], { n: number }>;
    countAliasesOfDomain: Statement<[string], { n: number }>;
    insertUser: Statement<[UserRow & { domain: string; maildir: string }]>;
    deleteUser: Statement<[string]>;
    updateSecrets: Statement<[UserSecretColumns & { address: string }]>;
    selectUser: Statement<[string], UserRow>;
    selectUsers: Statement<[], UserRow>;
    selectUsersOfDomain: Statement<[string], UserRow>;
    insertAlias: Statement<[string, string, string]>;
    deleteAlias: Statement<[string, string]>;
    deleteAliasAll: Statement<[string]>;
    selectAliases: Statement<[], Alias>;
    selectAliasTargets: Statement<[string], { target: string }>;
  };

  /** Where queueInsert and queueRemove run when they run off the event loop. */
  private readonly queueWriter: SqliteQueueWriter | undefined;

  constructor(db: Db, queueWriterPath?: string) {
    this.db = db;
    this.cache = new ReadCache(db, 'SELECT n FROM directory_generation');
    this.submission = new SqliteSubmissionTables(db);
    this.queue = new SqliteQueueTables(db);
    this.greylist = new SqliteGreylistTables(db);
    this.queueWriter = queueWriterPath === undefined ? undefined : new SqliteQueueWriter(queueWriterPath, this.queue);
    this.sql = {
      insertDomain: db.prepare('INSERT INTO domains (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      deleteDomain: db.prepare('DELETE FROM domains WHERE name = ?'),
      selectDomains: db.prepare('SELECT name, created_at FROM domains ORDER BY name'),
      domainExists: db.prepare('SELECT 1 AS one FROM domains WHERE name = ?'),
      countUsersOfDomain: db.prepare('SELECT count(*) AS n FROM users WHERE domain = ?'),
      countAliasesOfDomain: db.prepare('SELECT count(*) AS n FROM aliases WHERE domain = ?'),
      insertUser: db.prepare(
        'INSERT INTO users (address, domain, maildir, password_hash, scram_sha1, scram_sha256, cram_md5, created_at) ' +
          'VALUES (@address, @domain, @maildir, @password_hash, @scram_sha1, @scram_sha256, @cram_md5, @created_at) ' +
          'ON CONFLICT DO NOTHING',
      ),
      deleteUser: db.prepare('DELETE FROM users WHERE address = ?'),
      updateSecrets: db.prepare(
        'UPDATE users SET password_hash = @password_hash, scram_sha1 = @scram_sha1, ' +
          'scram_sha256 = @scram_sha256, cram_md5 = @cram_md5 WHERE address = @address',
      ),
      selectUser: db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE address = ?`),
      selectUsers: db.prepare(`SELECT ${USER_COLUMNS} FROM users ORDER BY address`),
      selectUsersOfDomain: db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE domain = ? ORDER BY address`),
      insertAlias: db.prepare('INSERT INTO aliases (source, target, domain) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      deleteAlias: db.prepare('DELETE FROM aliases WHERE source = ? AND target = ?'),
      deleteAliasAll: db.prepare('DELETE FROM aliases WHERE source = ?'),
      selectAliases: db.prepare('SELECT source, target FROM aliases ORDER BY source, target'),
      selectAliasTargets: db.prepare('SELECT target FROM aliases WHERE source = ? ORDER BY target'),
    };
  }

  // --- domains ---

  async addDomain(name: string): Promise<void> {
    const domain = requireDomain(name);
    if (this.sql.insertDomain.run(domain, Date.now()).changes === 0) {
      throw new StoreError(`domain "${domain}" already exists`);
    }
  }

  async removeDomain(name: string): Promise<boolean> {
    const domain = requireDomain(name);
    return this.db
      .transaction(() => {
        const users = this.sql.countUsersOfDomain.get(domain)?.n ?? 0;
        const aliases = this.sql.countAliasesOfDomain.get(domain)?.n ?? 0;
        if (users > 0 || aliases > 0) {
          throw new StoreError(
            `domain "${domain}" still has ${plural(users, 'user')} and ${plural(aliases, 'alias', 'aliases')}; ` +
              `remove them first (see: postern user list --domain ${domain}, postern alias list)`,
          );
        }
        return this.sql.deleteDomain.run(domain).changes > 0;
      })
      .immediate();
  }

  async listDomains(): Promise<Domain[]> {
    return this.sql.selectDomains.all().map((row) => ({ name: row.name, createdAt: row.created_at }));
  }

  async isLocalDomain(name: string): Promise<boolean> {
    return this.cache.get(`domain ${name}`, () => {
      const domain = normalizeDomain(name);
      return domain !== undefined && this.sql.domainExists.get(domain) !== undefined;
    });
  }

  // --- users ---

  async addUser(address: string, secrets: UserSecrets): Promise<void> {
    const user = requireAddress(address);
    const domain = domainOf(user);
    // The Maildir's name, for Dovecot's userdb (migration 5).
    const row = { address: user, domain, maildir: mailboxDirectory(user), ...toSecretColumns(secrets), created_at: Date.now() };
    this.db
      .transaction(() => {
        this.requireLocalDomain(domain);
        if (this.sql.insertUser.run(row).changes === 0) {
          throw new StoreError(`user "${user}" already exists`);
        }
      })
      .immediate();
  }

  async removeUser(address: string): Promise<boolean> {
    return this.sql.deleteUser.run(requireAddress(address)).changes > 0;
  }

  async setUserSecrets(address: string, secrets: UserSecrets): Promise<boolean> {
    return this.sql.updateSecrets.run({ address: requireAddress(address), ...toSecretColumns(secrets) }).changes > 0;
  }

  async getUser(address: string): Promise<User | undefined> {
    return this.cache.get(`user ${address}`, () => {
      const user = normalizeAddress(address);
      if (user === undefined) return undefined;
      const row = this.sql.selectUser.get(user);
      return row && toUser(row);
    });
  }

  async listUsers(domain?: string): Promise<User[]> {
    if (domain === undefined) return this.sql.selectUsers.all().map(toUser);
    const d = normalizeDomain(domain);
    return d === undefined ? [] : this.sql.selectUsersOfDomain.all(d).map(toUser);
  }

  // --- aliases ---

  async addAlias(source: string, target: string): Promise<void> {
    const from = requireAliasSource(source);
    const to = requireAddress(target);
    if (from === to) throw new StoreError(`alias "${from}" cannot point to itself`);
    const domain = domainOf(from);
    this.db
      .transaction(() => {
        this.requireLocalDomain(domain);
        if (this.sql.insertAlias.run(from, to, domain).changes === 0) {
          throw new StoreError(`alias "${from}" -> "${to}" already exists`);
        }
      })
      .immediate();
  }

  async removeAlias(source: string, target?: string): Promise<boolean> {
    const from = requireAliasSource(source);
    const result =
      target === undefined
        ? this.sql.deleteAliasAll.run(from)
        : this.sql.deleteAlias.run(from, requireAddress(target));
    return result.changes > 0;
  }

  async listAliases(): Promise<Alias[]> {
    return this.sql.selectAliases.all().map((row) => ({ source: row.source, target: row.target }));
  }

  async aliasTargets(source: string): Promise<string[]> {
    const targets = this.cache.get(`alias ${source}`, () => {
      const from = normalizeAliasSource(source);
      return from === undefined ? [] : this.sql.selectAliasTargets.all(from).map((row) => row.target);
    });
    return [...targets];
  }

  // --- queue bookkeeping ---

  async queueInsert(entries: readonly QueueEntry[]): Promise<void> {
    if (this.queueWriter) return this.queueWriter.insert(entries);
    this.queue.insert(entries);
  }

  async queueRemove(queueIds: readonly string[]): Promise<void> {
    if (this.queueWriter) return this.queueWriter.remove(queueIds);
    this.queue.remove(queueIds);
  }

  async queueList(): Promise<QueueEntry[]> {
    return this.queue.list();
  }

  async queueGet(queueId: string): Promise<QueueEntry | undefined> {
    return this.queue.get(queueId);
  }

  async queueAddRequest(action: QueueAction, queueId: string | null): Promise<number> {
    return this.queue.addRequest(action, queueId);
  }

  async queueRequests(): Promise<QueueRequest[]> {
    return this.queue.requests();
  }

  async queueRequestsDone(ids: readonly number[]): Promise<void> {
    this.queue.requestsDone(ids);
  }

  // --- submission policy (see sqlite-submission.ts) ---

  async getUserLimits(account: string): Promise<UserLimits> {
    // Asked three times per submitted message (sender policy at MAIL and after DATA, rates at MAIL).
    return this.cache.get(`limits ${account}`, () => Object.freeze(this.submission.getUserLimits(account)));
  }

  async setUserLimits(account: string, change: UserLimitsChange): Promise<void> {
    this.submission.setUserLimits(account, change);
  }

  async addSenderGrant(account: string, sender: string): Promise<void> {
    this.submission.addSenderGrant(account, sender);
  }

  async removeSenderGrant(account: string, sender: string): Promise<boolean> {
    return this.submission.removeSenderGrant(account, sender);
  }

  async listSenderGrants(account: string): Promise<readonly string[]> {
    return this.cache.get(`grants ${account}`, () => Object.freeze(this.submission.listSenderGrants(account)));
  }

  async loadSubmissionCounters(account: string): Promise<SubmissionCounters | undefined> {
    return this.submission.loadSubmissionCounters(account);
  }

  async saveSubmissionCounters(entries: ReadonlyMap<string, SubmissionCounters>): Promise<void> {
    this.submission.saveSubmissionCounters(entries);
  }

  // --- greylist (see sqlite-greylist.ts) ---

  async greylistSighting(triplet: GreylistTriplet): Promise<GreylistSighting | undefined> {
    return this.greylist.sighting(triplet);
  }

  async saveGreylistSighting(triplet: GreylistTriplet, sighting: GreylistSighting): Promise<void> {
    this.greylist.saveSighting(triplet, sighting);
  }

  async greylistClient(client: string): Promise<GreylistClient | undefined> {
    return this.greylist.client(client);
  }

  async saveGreylistClient(client: string, state: GreylistClient): Promise<void> {
    this.greylist.saveClient(client, state);
  }

  async purgeGreylist(purge: GreylistPurge): Promise<{ triplets: number; clients: number }> {
    return this.greylist.purge(purge);
  }

  async close(): Promise<void> {
    await this.queueWriter?.close();
    if (this.db.open) this.db.close();
  }

  private requireLocalDomain(domain: string): void {
    if (this.sql.domainExists.get(domain) === undefined) {
      throw new StoreError(`domain "${domain}" is not a local domain; add it first with: postern domain add ${domain}`);
    }
  }
}

const USER_COLUMNS = 'address, password_hash, scram_sha1, scram_sha256, cram_md5, created_at';

function toUser(row: UserRow): User {
  return { address: row.address, ...fromSecretColumns(row), createdAt: row.created_at };
}

function requireDomain(name: string): string {
  const domain = normalizeDomain(name);
  if (domain === undefined) throw new StoreError(`"${name}" is not a valid domain name`);
  return domain;
}

function requireAddress(address: string): string {
  const normalized = normalizeAddress(address);
  if (normalized === undefined) throw new StoreError(`"${address}" is not a valid address`);
  return normalized;
}

function requireAliasSource(source: string): string {
  const normalized = normalizeAliasSource(source);
  if (normalized === undefined) {
    throw new StoreError(`"${source}" is not a valid alias source: use an address, or "@domain" for a catch-all`);
  }
  return normalized;
}

/** The domain of a normalized address or "@domain" alias source. */
function domainOf(normalized: string): string {
  return normalized.startsWith('@') ? normalized.slice(1) : (splitAddress(normalized)?.domain ?? '');
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
