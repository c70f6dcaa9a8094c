// Answers to the directory's questions (is this domain ours, who is this user, where does this
// alias go), kept for as long as the directory has not changed.
//
// Every RCPT asks two or three of them, and at a hundred sessions the SQLite reads and the
// normalizing around them were a tenth of the event loop's time. A cache that could go stale
// would bounce mail for a user created a minute ago, so this one watches two counters SQLite
// keeps: total_changes(), which moves when this connection changes a row, read at every question
// (about 2 us), and PRAGMA data_version, which moves when another connection (the CLI, another
// process of ours) commits (https://www.sqlite.org/pragma.html#pragma_data_version). That one
// costs as much as a lookup (about 10 us), so it is read once per turn of the event loop, for
// all the questions asked in that turn: another process's commit is seen from the next turn on,
// a fraction of a millisecond later.
//
// Both counters move for any table, and the queue's own writes commit on another connection
// after every message (sqlite-queue-writer.ts): at one session that emptied the cache before
// every RCPT. So when either moves, the cache reads the directory's generation, a number that
// triggers on the directory's tables raise (migration 7), and empties itself only if that moved.

import type { Database as Db, Statement } from 'better-sqlite3';

/** A bound on the answers kept: a flood of distinct unknown recipients must not grow memory. */
const MAX_ANSWERS = 10_000;

export class ReadCache {
  private readonly dataVersion: Statement<[], number>;
  private readonly totalChanges: Statement<[], number>;
  private readonly generation: Statement<[], number> | undefined;
  private seenVersion = -1;
  private seenChanges = -1;
  private seenGeneration = -1;
  private readonly answers = new Map<string, unknown>();
  /** data_version as read in this turn of the event loop, if it was. */
  private versionThisTurn: number | undefined;

  /**
   * `generationQuery` reads one number that moves with every change to what the answers come
   * from; without it, a change to any table empties the cache.
   */
  constructor(db: Db, generationQuery?: string) {
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck();
    this.generation = generationQuery === undefined ? undefined : db.prepare<[], number>(generationQuery).pluck();
  }

  /** The answer to `question` (a key naming the query and its argument), computed on a miss. */
  get<T>(question: string, compute: () => T): T {
    const version = this.currentDataVersion();
    const changes = this.totalChanges.get() ?? 0;
    if (version !== this.seenVersion || changes !== this.seenChanges) {
      this.seenVersion = version;
      this.seenChanges = changes;
      // -1: no generation to go by (none asked for, or its row is gone), so any change counts.
      const generation = this.generation?.get() ?? -1;
      if (generation === -1 || generation !== this.seenGeneration) this.answers.clear();
      this.seenGeneration = generation;
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
