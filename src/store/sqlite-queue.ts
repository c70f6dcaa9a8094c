// The queue tables on SQLite: one row per queued message, one per recipient, and the operators'
// requests (migrations 1 and 4). Kept apart from sqlite-store.ts, which delegates here.
// An entry is always written whole (message row and its recipients), so a reader never sees a
// message with half of its recipients updated.

import type { Database as Db, Statement } from 'better-sqlite3';
import type { QueueAction, QueueEntry, QueueRecipientState, QueueRequest, RecipientStatus } from './store.js';

interface QueueRow {
  queue_id: string;
  sender: string;
  recipients: string;
  size: number;
  received_at: number;
  state: QueueEntry['state'];
  envid: string | null;
  ret: 'FULL' | 'HDRS' | null;
  delay_warned: number;
}

interface RecipientRow {
  queue_id: string;
  position: number;
  address: string;
  status: RecipientStatus;
  attempts: number;
  next_attempt_at: number | null;
  last_attempt_at: number | null;
  last_reply: string | null;
  last_reason: string | null;
  remote_host: string | null;
  notify: string | null;
  orcpt_type: string | null;
  orcpt_address: string | null;
}

interface RequestRow {
  id: number;
  action: QueueAction;
  queue_id: string | null;
  requested_at: number;
}

const QUEUE_COLUMNS = 'queue_id, sender, recipients, size, received_at, state, envid, ret, delay_warned';
const RECIPIENT_COLUMNS =
  'queue_id, position, address, status, attempts, next_attempt_at, last_attempt_at, last_reply, last_reason, ' +
  'remote_host, notify, orcpt_type, orcpt_address';

export class SqliteQueueTables {
  private readonly sql: {
    insertNew: Statement<QueueParams>;
    /** QueueParams without the queue id, then the queue id. */
    update: Statement<unknown[]>;
    deleteRecipients: Statement<[string]>;
    insertRecipient: Statement<RecipientParams>;
    delete: Statement<[string]>;
    selectAll: Statement<[], QueueRow>;
    selectOne: Statement<[string], QueueRow>;
    selectAllRecipients: Statement<[], RecipientRow>;
    selectRecipients: Statement<[string], RecipientRow>;
    insertRequest: Statement<[string, string | null, number]>;
    selectRequests: Statement<[], RequestRow>;
    deleteRequest: Statement<[number]>;
  };

  constructor(private readonly db: Db) {
    this.sql = {
      insertNew: db.prepare(`INSERT INTO queue (${QUEUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue_id) DO NOTHING`),
      update: db.prepare(
        'UPDATE queue SET sender = ?, recipients = ?, size = ?, received_at = ?, state = ?, envid = ?, ret = ?, delay_warned = ? WHERE queue_id = ?',
      ),
      deleteRecipients: db.prepare('DELETE FROM queue_recipients WHERE queue_id = ?'),
      insertRecipient: db.prepare(`INSERT INTO queue_recipients (${RECIPIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      delete: db.prepare('DELETE FROM queue WHERE queue_id = ?'),
      selectAll: db.prepare(`SELECT ${QUEUE_COLUMNS} FROM queue ORDER BY received_at, queue_id`),
      selectOne: db.prepare(`SELECT ${QUEUE_COLUMNS} FROM queue WHERE queue_id = ?`),
      selectAllRecipients: db.prepare(`SELECT ${RECIPIENT_COLUMNS} FROM queue_recipients ORDER BY queue_id, position`),
      selectRecipients: db.prepare(`SELECT ${RECIPIENT_COLUMNS} FROM queue_recipients WHERE queue_id = ? ORDER BY position`),
      insertRequest: db.prepare('INSERT INTO queue_requests (action, queue_id, requested_at) VALUES (?, ?, ?)'),
      selectRequests: db.prepare('SELECT id, action, queue_id, requested_at FROM queue_requests ORDER BY id'),
      deleteRequest: db.prepare('DELETE FROM queue_requests WHERE id = ?'),
    };
  }

  /**
   * Writes each entry whole, new or not. Most are new (a message just accepted): one insert for
   * the message and one per recipient. Positional parameters, not named ones: at a hundred
   * sessions this runs for every accepted message, and binding from arrays halved its cost.
   */
  insert(entries: readonly QueueEntry[]): void {
    this.db.transaction(() => {
      for (const e of entries) {
        const row = queueParams(e);
        if (this.sql.insertNew.run(...row).changes === 0) {
          const [queueId, ...rest] = row;
          this.sql.update.run(...rest, queueId);
          this.sql.deleteRecipients.run(e.queueId);
        }
        (e.recipientStates ?? []).forEach((r, position) => this.sql.insertRecipient.run(...recipientParams(e.queueId, position, r)));
      }
    })();
  }

  remove(queueIds: readonly string[]): void {
    this.db.transaction(() => {
      for (const id of queueIds) this.sql.delete.run(id);
    })();
  }

  list(): QueueEntry[] {
    return this.db.transaction(() => {
      const byId = new Map<string, QueueRecipientState[]>();
      for (const row of this.sql.selectAllRecipients.all()) {
        const list = byId.get(row.queue_id) ?? [];
        list.push(fromRecipientRow(row));
        byId.set(row.queue_id, list);
      }
      return this.sql.selectAll.all().map((row) => fromQueueRow(row, byId.get(row.queue_id) ?? []));
    })();
  }

  get(queueId: string): QueueEntry | undefined {
    return this.db.transaction(() => {
      const row = this.sql.selectOne.get(queueId);
      return row && fromQueueRow(row, this.sql.selectRecipients.all(queueId).map(fromRecipientRow));
    })();
  }

  addRequest(action: QueueAction, queueId: string | null): number {
    return Number(this.sql.insertRequest.run(action, queueId, Date.now()).lastInsertRowid);
  }

  requests(): QueueRequest[] {
    return this.sql.selectRequests.all().map((r) => ({ id: r.id, action: r.action, queueId: r.queue_id, requestedAt: r.requested_at }));
  }

  requestsDone(ids: readonly number[]): void {
    this.db.transaction(() => {
      for (const id of ids) this.sql.deleteRequest.run(id);
    })();
  }
}

/** A queue row's values in QUEUE_COLUMNS order. */
type QueueParams = [string, string, string, number, number, QueueEntry['state'], string | null, 'FULL' | 'HDRS' | null, number];

function queueParams(e: QueueEntry): QueueParams {
  return [e.queueId, e.sender, JSON.stringify(e.recipients), e.size, e.receivedAt, e.state, e.envid ?? null, e.ret ?? null, e.delayWarned ? 1 : 0];
}

/** Entries written before migration 4 (or without states) read as "every recipient queued". */
function fromQueueRow(row: QueueRow, states: QueueRecipientState[]): QueueEntry {
  const recipients = JSON.parse(row.recipients) as string[];
  return {
    queueId: row.queue_id,
    sender: row.sender,
    recipients,
    size: row.size,
    receivedAt: row.received_at,
    state: row.state,
    envid: row.envid ?? undefined,
    ret: row.ret ?? undefined,
    delayWarned: row.delay_warned === 1,
    recipientStates: states.length > 0 ? states : recipients.map(queuedRecipient),
  };
}

export function queuedRecipient(address: string): QueueRecipientState {
  return {
    address,
    status: 'queued',
    attempts: 0,
    nextAttemptAt: null,
    lastAttemptAt: null,
    lastReply: null,
    lastReason: null,
    remoteHost: null,
    notify: null,
    orcpt: null,
  };
}

/** A recipient row's values in RECIPIENT_COLUMNS order. */
type RecipientParams = [
  string, number, string, RecipientStatus, number, number | null, number | null, string | null, string | null, string | null,
  string | null, string | null, string | null,
];

function recipientParams(queueId: string, position: number, r: QueueRecipientState): RecipientParams {
  return [
    queueId,
    position,
    r.address,
    r.status,
    r.attempts,
    r.nextAttemptAt,
    r.lastAttemptAt,
    r.lastReply,
    r.lastReason,
    r.remoteHost,
    r.notify === null ? null : JSON.stringify(r.notify),
    r.orcpt?.addrType ?? null,
    r.orcpt?.address ?? null,
  ];
}

function fromRecipientRow(row: RecipientRow): QueueRecipientState {
  return {
    address: row.address,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastAttemptAt: row.last_attempt_at,
    lastReply: row.last_reply,
    lastReason: row.last_reason,
    remoteHost: row.remote_host,
    notify: row.notify === null ? null : (JSON.parse(row.notify) as QueueRecipientState['notify']),
    orcpt: row.orcpt_type !== null && row.orcpt_address !== null ? { addrType: row.orcpt_type, address: row.orcpt_address } : null,
  };
}
