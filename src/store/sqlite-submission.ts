// The submission-policy tables on SQLite: per-account limits, sender grants and rate counters
// (migration 2). Kept apart from sqlite-store.ts, which delegates here, so that each file stays
// about one part of the schema.

import type { Database as Db, Statement } from 'better-sqlite3';
import { normalizeAddress } from '../mail/address.js';
import { normalizeAliasSource } from './alias-source.js';
import { StoreError } from './store.js';
import type { SenderPolicy, SubmissionCounters, UserLimits, UserLimitsChange } from './store.js';

interface LimitsRow {
  max_messages_per_hour: number | null;
  max_recipients_per_day: number | null;
  sender_policy: SenderPolicy | null;
}

interface CountersRow {
  hour_start: number;
  hour_count: number;
  prev_hour_count: number;
  day_start: number;
  day_count: number;
  prev_day_count: number;
}

type CountersParams = [string, number, number, number, number, number, number];

export class SqliteSubmissionTables {
  private readonly sql: {
    userExists: Statement<[string], { one: number }>;
    selectLimits: Statement<[string], LimitsRow>;
    upsertLimits: Statement<[string, number | null, number | null, string | null]>;
    deleteLimits: Statement<[string]>;
    insertGrant: Statement<[string, string]>;
    deleteGrant: Statement<[string, string]>;
    selectGrants: Statement<[string], { address: string }>;
    selectCounters: Statement<[string], CountersRow>;
    upsertCounters: Statement<CountersParams>;
  };

  constructor(private readonly db: Db) {
    this.sql = {
      userExists: db.prepare('SELECT 1 AS one FROM users WHERE address = ?'),
      selectLimits: db.prepare(
        'SELECT max_messages_per_hour, max_recipients_per_day, sender_policy FROM user_limits WHERE account = ?',
      ),
      upsertLimits: db.prepare(
        `INSERT INTO user_limits (account, max_messages_per_hour, max_recipients_per_day, sender_policy)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (account) DO UPDATE SET max_messages_per_hour = excluded.max_messages_per_hour,
           max_recipients_per_day = excluded.max_recipients_per_day, sender_policy = excluded.sender_policy`,
      ),
      deleteLimits: db.prepare('DELETE FROM user_limits WHERE account = ?'),
      insertGrant: db.prepare('INSERT INTO sender_grants (account, address) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      deleteGrant: db.prepare('DELETE FROM sender_grants WHERE account = ? AND address = ?'),
      selectGrants: db.prepare('SELECT address FROM sender_grants WHERE account = ? ORDER BY address'),
      selectCounters: db.prepare(
        `SELECT hour_start, hour_count, prev_hour_count, day_start, day_count, prev_day_count
         FROM submission_counters WHERE account = ?`,
      ),
      upsertCounters: db.prepare(
        `INSERT INTO submission_counters
           (account, hour_start, hour_count, prev_hour_count, day_start, day_count, prev_day_count)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (account) DO UPDATE SET hour_start = excluded.hour_start, hour_count = excluded.hour_count,
           prev_hour_count = excluded.prev_hour_count, day_start = excluded.day_start,
           day_count = excluded.day_count, prev_day_count = excluded.prev_day_count`,
      ),
    };
  }

  getUserLimits(account: string): UserLimits {
    const user = normalizeAddress(account);
    const row = user === undefined ? undefined : this.sql.selectLimits.get(user);
    return row ? toUserLimits(row) : {};
  }

  setUserLimits(account: string, change: UserLimitsChange): void {
    const user = requireAddress(account);
    for (const n of [change.maxMessagesPerHour, change.maxRecipientsPerDay]) {
      if (n != null && !(Number.isSafeInteger(n) && n >= 0)) throw new StoreError(`limit ${String(n)} is not a whole number >= 0`);
    }
    this.db
      .transaction(() => {
        this.requireUser(user);
        const now = this.sql.selectLimits.get(user);
        const next: LimitsRow = {
          max_messages_per_hour: merge(change.maxMessagesPerHour, now?.max_messages_per_hour ?? null),
          max_recipients_per_day: merge(change.maxRecipientsPerDay, now?.max_recipients_per_day ?? null),
          sender_policy: merge(change.senderPolicy, now?.sender_policy ?? null),
        };
        if (next.max_messages_per_hour === null && next.max_recipients_per_day === null && next.sender_policy === null) {
          this.sql.deleteLimits.run(user);
        } else {
          this.sql.upsertLimits.run(user, next.max_messages_per_hour, next.max_recipients_per_day, next.sender_policy);
        }
      })
      .immediate();
  }

  addSenderGrant(account: string, sender: string): void {
    const user = requireAddress(account);
    const grant = requireGrant(sender);
    this.db
      .transaction(() => {
        this.requireUser(user);
        if (this.sql.insertGrant.run(user, grant).changes === 0) {
          throw new StoreError(`${user} may already send as "${grant}"`);
        }
      })
      .immediate();
  }

  removeSenderGrant(account: string, sender: string): boolean {
    return this.sql.deleteGrant.run(requireAddress(account), requireGrant(sender)).changes > 0;
  }

  listSenderGrants(account: string): string[] {
    const user = normalizeAddress(account);
    return user === undefined ? [] : this.sql.selectGrants.all(user).map((row) => row.address);
  }

  loadSubmissionCounters(account: string): SubmissionCounters | undefined {
    const row = this.sql.selectCounters.get(account);
    if (!row) return undefined;
    return {
      messages: { start: row.hour_start, current: row.hour_count, previous: row.prev_hour_count },
      recipients: { start: row.day_start, current: row.day_count, previous: row.prev_day_count },
    };
  }

  saveSubmissionCounters(entries: ReadonlyMap<string, SubmissionCounters>): void {
    this.db.transaction(() => {
      for (const [account, { messages: m, recipients: r }] of entries) {
        this.sql.upsertCounters.run(account, m.start, m.current, m.previous, r.start, r.current, r.previous);
      }
    })();
  }

  private requireUser(user: string): void {
    if (this.sql.userExists.get(user) === undefined) {
      throw new StoreError(`user "${user}" does not exist (see: postern user list)`);
    }
  }
}

function toUserLimits(row: LimitsRow): UserLimits {
  return {
    ...(row.max_messages_per_hour !== null && { maxMessagesPerHour: row.max_messages_per_hour }),
    ...(row.max_recipients_per_day !== null && { maxRecipientsPerDay: row.max_recipients_per_day }),
    ...(row.sender_policy !== null && { senderPolicy: row.sender_policy }),
  };
}

/** A change's value, null to clear, or (absent) what is stored now. */
function merge<T>(change: T | null | undefined, current: T | null): T | null {
  return change === undefined ? current : change;
}

function requireAddress(address: string): string {
  const normalized = normalizeAddress(address);
  if (normalized === undefined) throw new StoreError(`"${address}" is not a valid address`);
  return normalized;
}

/** Grants are stored like alias sources: a normalized address, or "@domain". */
function requireGrant(sender: string): string {
  const normalized = normalizeAliasSource(sender);
  if (normalized === undefined) {
    throw new StoreError(`"${sender}" is not a valid sender: use an address, or "@domain" for a whole domain`);
  }
  return normalized;
}
