// The SQLite schema, as an append-only list of migrations. PRAGMA user_version records how many
// have run; a later issue adds a table by appending a migration, never by editing an old one,
// because databases in the field have already run the old ones. A migration is SQL, or code when
// it must compute values SQL cannot (migration 5's Maildir names).

import type { Database } from 'better-sqlite3';
import { mailboxDirectory } from '../mail/mailbox-directory.js';
import { StoreError } from './store.js';

export type Migration = string | ((db: Database) => void);

export const MIGRATIONS: readonly Migration[] = [
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
  // 2: submission policy. user_limits holds per-account overrides of the [submission] defaults
  // (NULL = use the default); sender_grants the extra addresses ("@domain" = all of a domain) an
  // account may send as. submission_counters persists the rate-limit windows (see
  // src/policy/rate-window.ts) so a restart does not hand every account a fresh quota; it has no
  // foreign key because it is written behind, possibly just after the user was removed.
  `
  CREATE TABLE user_limits (
    account                 TEXT PRIMARY KEY REFERENCES users(address) ON DELETE CASCADE,
    max_messages_per_hour   INTEGER,
    max_recipients_per_day  INTEGER,
    sender_policy           TEXT CHECK (sender_policy IN ('strict', 'any'))
  );
  CREATE TABLE sender_grants (
    account  TEXT NOT NULL REFERENCES users(address) ON DELETE CASCADE,
    address  TEXT NOT NULL,
    PRIMARY KEY (account, address)
  );
  CREATE TABLE submission_counters (
    account          TEXT PRIMARY KEY,
    hour_start       INTEGER NOT NULL,
    hour_count       INTEGER NOT NULL,
    prev_hour_count  INTEGER NOT NULL,
    day_start        INTEGER NOT NULL,
    day_count        INTEGER NOT NULL,
    prev_day_count   INTEGER NOT NULL
  );
  `,
  // 3: SASL secrets beside the scrypt hash. scram_sha1/scram_sha256 hold RFC 5803 text
  // ("SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>"); cram_md5 the hex HMAC-MD5 key state,
  // only when [auth] cram_md5 was on as the password was set. NULL: the mechanism is unusable for
  // this account until its password is set again (accounts from before this migration).
  `
  ALTER TABLE users ADD COLUMN scram_sha1 TEXT;
  ALTER TABLE users ADD COLUMN scram_sha256 TEXT;
  ALTER TABLE users ADD COLUMN cram_md5 TEXT;
  `,
  // 4: outbound relay. Per-recipient delivery state beside each queued message (the spool keeps
  // the body and which recipients are finished; these rows keep retry times and the last reply,
  // so a restart resumes the same schedule). queue_requests carries `postern queue` commands
  // from the CLI to the server, which is the only writer of the queue's state.
  `
  ALTER TABLE queue ADD COLUMN envid TEXT;
  ALTER TABLE queue ADD COLUMN ret TEXT CHECK (ret IN ('FULL', 'HDRS'));
  ALTER TABLE queue ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE queue_recipients (
    queue_id         TEXT NOT NULL REFERENCES queue(queue_id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    address          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'deferred', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    last_attempt_at  INTEGER,
    last_reply       TEXT,
    last_reason      TEXT,
    remote_host      TEXT,
    notify           TEXT,
    orcpt_type       TEXT,
    orcpt_address    TEXT,
    PRIMARY KEY (queue_id, position)
  );
  CREATE TABLE queue_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    action        TEXT NOT NULL CHECK (action IN ('flush', 'retry', 'hold', 'release', 'delete')),
    queue_id      TEXT,
    requested_at  INTEGER NOT NULL
  );
  `,
  // 5: what Dovecot reads (its sql passdb and userdb, see `postern dovecot sql`), as views, so
  // the mapping from our columns to Dovecot's fields is ours and Dovecot's queries stay trivial.
  // users.maildir is the Maildir's name under the mail root ("example.test/alice"); SQL cannot
  // percent-encode a local part, so it is computed here and by the store for each new user.
  // dovecot_passwords turns the RFC 5803 SCRAM-SHA-256 secret into Dovecot's own form of the
  // same four values, "{SCRAM-SHA-256}<iterations>,<salt>,<StoredKey>,<ServerKey>" (base64 never
  // contains "$", ":" or ","): Dovecot checks a plaintext password against it, and SCRAM-SHA-256
  // logins, with nothing reversible stored. Accounts without that secret (passwords set before
  // migration 3) are absent, so they cannot log in there until their next `postern user passwd`.
  // dovecot_mailboxes lists every account, with or without it: mail is still delivered to them.
  (db) => {
    db.exec(`
      ALTER TABLE users ADD COLUMN maildir TEXT;
      CREATE VIEW dovecot_passwords AS
        SELECT address AS user,
               '{SCRAM-SHA-256}' || replace(replace(substr(scram_sha256, 15), '$', ','), ':', ',') AS password
        FROM users
        WHERE scram_sha256 GLOB 'SCRAM-SHA-256$[0-9]*:*$*:*';
      CREATE VIEW dovecot_mailboxes AS
        SELECT address AS user, maildir FROM users WHERE maildir IS NOT NULL;
    `);
    const setMaildir = db.prepare('UPDATE users SET maildir = ? WHERE address = ?');
    for (const { address } of db.prepare('SELECT address FROM users').all() as { address: string }[]) {
      setMaildir.run(mailboxDirectory(address), address);
    }
  },
  // 6: the greylist (src/policy/greylist.ts), as postgrey keeps it: one row per triplet with the
  // times it was first and last seen, and one per client network with its successful retries
  // (the auto-whitelist). last_seen is indexed for the purge, which deletes by age.
  `
  CREATE TABLE greylist (
    client      TEXT NOT NULL,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (client, sender, recipient)
  ) WITHOUT ROWID;
  CREATE INDEX greylist_by_last_seen ON greylist(last_seen);
  CREATE TABLE greylist_clients (
    client     TEXT PRIMARY KEY,
    passed     INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX greylist_clients_by_last_seen ON greylist_clients(last_seen);
  `,
  // 7: the directory's generation: a number raised by every change to the tables the server's
  // read cache answers from (read-cache.ts), so that the queue's own writes, which commit after
  // every message, do not empty that cache. A statement-level trigger would do, but SQLite has
  // only row-level ones: a change of many rows raises the number many times, which is harmless.
  `
  CREATE TABLE directory_generation (n INTEGER NOT NULL);
  INSERT INTO directory_generation (n) VALUES (0);
  CREATE TRIGGER domains_insert_generation AFTER INSERT ON domains BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER domains_update_generation AFTER UPDATE ON domains BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER domains_delete_generation AFTER DELETE ON domains BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER users_insert_generation AFTER INSERT ON users BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER users_update_generation AFTER UPDATE ON users BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER users_delete_generation AFTER DELETE ON users BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER aliases_insert_generation AFTER INSERT ON aliases BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER aliases_update_generation AFTER UPDATE ON aliases BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER aliases_delete_generation AFTER DELETE ON aliases BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER user_limits_insert_generation AFTER INSERT ON user_limits BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER user_limits_update_generation AFTER UPDATE ON user_limits BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER user_limits_delete_generation AFTER DELETE ON user_limits BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER sender_grants_insert_generation AFTER INSERT ON sender_grants BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER sender_grants_update_generation AFTER UPDATE ON sender_grants BEGIN UPDATE directory_generation SET n = n + 1; END;
  CREATE TRIGGER sender_grants_delete_generation AFTER DELETE ON sender_grants BEGIN UPDATE directory_generation SET n = n + 1; END;
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
    for (const migration of MIGRATIONS.slice(version)) {
      if (typeof migration === 'string') db.exec(migration);
      else migration(db);
    }
    if (version !== MIGRATIONS.length) db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}
