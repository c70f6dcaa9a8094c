// The greylist's tables on SQLite (migration 6): triplets with their first and last sightings,
// and client networks with their successful retries. Kept apart from sqlite-store.ts, which
// delegates here. The rows hold what src/policy/greylist.ts decides with; the decisions are its.

import type { Database as Db, Statement } from 'better-sqlite3';
import type { GreylistClient, GreylistPurge, GreylistSighting, GreylistTriplet } from './store.js';

type TripletParams = [string, string, string];

export class SqliteGreylistTables {
  private readonly sql: {
    selectSighting: Statement<TripletParams, { first_seen: number; last_seen: number }>;
    upsertSighting: Statement<[...TripletParams, number, number]>;
    selectClient: Statement<[string], { passed: number; last_seen: number }>;
    upsertClient: Statement<[string, number, number]>;
    purgeTriplets: Statement<[number, number, number]>;
    purgeClients: Statement<[number]>;
  };

  constructor(private readonly db: Db) {
    this.sql = {
      selectSighting: db.prepare('SELECT first_seen, last_seen FROM greylist WHERE client = ? AND sender = ? AND recipient = ?'),
      upsertSighting: db.prepare(
        `INSERT INTO greylist (client, sender, recipient, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (client, sender, recipient) DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen`,
      ),
      selectClient: db.prepare('SELECT passed, last_seen FROM greylist_clients WHERE client = ?'),
      upsertClient: db.prepare(
        `INSERT INTO greylist_clients (client, passed, last_seen) VALUES (?, ?, ?)
         ON CONFLICT (client) DO UPDATE SET passed = excluded.passed, last_seen = excluded.last_seen`,
      ),
      purgeTriplets: db.prepare(
        'DELETE FROM greylist WHERE last_seen < ? OR (last_seen < ? AND last_seen - first_seen < ?)',
      ),
      purgeClients: db.prepare('DELETE FROM greylist_clients WHERE last_seen < ?'),
    };
  }

  sighting(t: GreylistTriplet): GreylistSighting | undefined {
    const row = this.sql.selectSighting.get(t.client, t.sender, t.recipient);
    return row && { firstSeen: row.first_seen, lastSeen: row.last_seen };
  }

  saveSighting(t: GreylistTriplet, s: GreylistSighting): void {
    this.sql.upsertSighting.run(t.client, t.sender, t.recipient, s.firstSeen, s.lastSeen);
  }

  client(client: string): GreylistClient | undefined {
    const row = this.sql.selectClient.get(client);
    return row && { passed: row.passed, lastSeen: row.last_seen };
  }

  saveClient(client: string, state: GreylistClient): void {
    this.sql.upsertClient.run(client, state.passed, state.lastSeen);
  }

  purge(p: GreylistPurge): { triplets: number; clients: number } {
    return this.db.transaction(() => ({
      triplets: this.sql.purgeTriplets.run(p.seenBefore, p.unpassedSeenBefore, p.delayMs).changes,
      clients: this.sql.purgeClients.run(p.seenBefore).changes,
    }))();
  }
}
