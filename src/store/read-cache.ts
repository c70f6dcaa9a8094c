// Answers to the directory's questions (is this domain ours, who is this user, where does this
// alias go), kept for as long as the database has not changed.
//
// Every RCPT asks two or three of them, and at a hundred sessions the SQLite reads and the
// normalizing around them were a tenth of the event loop's time. A cache that could go stale
// would bounce mail for a user created a minute ago, so this one checks, at every question, two
// counters SQLite keeps for free: PRAGMA data_version moves when another connection (the CLI,
// another process of ours) commits, and total_changes() when this connection changes a row
// (https://www.sqlite.org/pragma.html#pragma_data_version). Either moving empties the cache.
// Both are read from memory, with no disk access, for a fraction of what a lookup costs.

import type { Database as Db, Statement } from 'better-sqlite3';

/** A bound on the answers kept: a flood of distinct unknown recipients must not grow memory. */
const MAX_ANSWERS = 10_000;

export class ReadCache {
  private readonly dataVersion: Statement<[], number>;
  private readonly totalChanges: Statement<[], number>;
  private seenVersion = -1;
  private seenChanges = -1;
  private readonly answers = new Map<string, unknown>();

  constructor(db: Db) {
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck();
  }

  /** The answer to `question` (a key naming the query and its argument), computed on a miss. */
  get<T>(question: string, compute: () => T): T {
    const version = this.dataVersion.get() ?? 0;
    const changes = this.totalChanges.get() ?? 0;
    if (version !== this.seenVersion || changes !== this.seenChanges) {
      this.answers.clear();
      this.seenVersion = version;
      this.seenChanges = changes;
    }
    if (this.answers.has(question)) return this.answers.get(question) as T;
    const answer = compute();
    if (this.answers.size >= MAX_ANSWERS) this.answers.clear();
    this.answers.set(question, answer);
    return answer;
  }
}
