// Answers to the directory's questions (is this domain ours, who is this user, where does this
// alias go), kept for as long as the database has not changed.
//
// Every RCPT asks two or three of them, and at a hundred sessions the SQLite reads and the
// normalizing around them were a tenth of the event loop's time. A cache that could go stale
// would bounce mail for a user created a minute ago, so this one watches two counters SQLite
// keeps: total_changes(), which moves when this connection changes a row, read at every question
// (about 2 us), and PRAGMA data_version, which moves when another connection (the CLI, another
// process of ours) commits (https://www.sqlite.org/pragma.html#pragma_data_version). That one
// costs as much as a lookup (about 10 us), so it is read once per turn of the event loop, for
// all the questions asked in that turn: another process's commit is seen from the next turn on,
// a fraction of a millisecond later. Either counter moving empties the cache.

import type { Database as Db, Statement } from 'better-sqlite3';

/** A bound on the answers kept: a flood of distinct unknown recipients must not grow memory. */
const MAX_ANSWERS = 10_000;

export class ReadCache {
  private readonly dataVersion: Statement<[], number>;
  private readonly totalChanges: Statement<[], number>;
  private seenVersion = -1;
  private seenChanges = -1;
  private readonly answers = new Map<string, unknown>();
  /** data_version as read in this turn of the event loop, if it was. */
  private versionThisTurn: number | undefined;

  constructor(db: Db) {
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck();
  }

  /** The answer to `question` (a key naming the query and its argument), computed on a miss. */
  get<T>(question: string, compute: () => T): T {
    const version = this.currentDataVersion();
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

  private currentDataVersion(): number {
    if (this.versionThisTurn === undefined) {
      this.versionThisTurn = this.dataVersion.get() ?? 0;
      setImmediate(() => (this.versionThisTurn = undefined));
    }
    return this.versionThisTurn;
  }
}
