// The SQLite schema, as an append-only list of migrations. PRAGMA user_version records how many
// have run; a later issue adds a table by appending a migration, never by editing an old one,
// because databases in the field have already run the old ones.

import type { Database } from 'better-sqlite3';
import { StoreError } from './store.js';

export const MIGRATIONS: readonly string[] = [
  // 1: domains, users, aliases, queue bookkeeping. Times are milliseconds since the epoch.
  // users.domain and aliases.domain let "list users of a domain" and "may this domain be removed"
  // use an index instead of string matching on the address.
  `
  CREATE TABLE domains (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
  );
  CREATE TABLE users (
    address        TEXT PRIMARY KEY,
    domain         TEXT NOT NULL REFERENCES domains(name),
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL
  );
  CREATE INDEX users_by_domain ON users(domain);
  CREATE TABLE aliases (
    source  TEXT NOT NULL,
    target  TEXT NOT NULL,
    domain  TEXT NOT NULL REFERENCES domains(name),
    PRIMARY KEY (source, target)
  );
  CREATE INDEX aliases_by_domain ON aliases(domain);
  CREATE TABLE queue (
    queue_id     TEXT PRIMARY KEY,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,
    size         INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'deferred', 'hold'))
  );
  `,
];

/** Brings the database up to the latest schema; safe when the CLI and the server start together. */
export function migrate(db: Database, path: string): void {
  // IMMEDIATE takes the write lock before reading user_version, so two processes opening a new
  // database at once cannot both run migration 1.
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new StoreError(
        `the store "${path}" has schema version ${version}, newer than this postern understands (${MIGRATIONS.length}); upgrade postern`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v] as string);
    }
    if (version !== MIGRATIONS.length) db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}
