// The one interface to persistent state: domains, users, aliases and the queue's bookkeeping.
// SQLite (sqlite-store.ts) implements it now; PostgreSQL will implement the same interface, which
// is why every method is async even though better-sqlite3 is synchronous.
// Addresses and domains are stored normalized (see src/util/address.ts): lower-case domain in
// A-label form, local part as given except that it is lower-cased for lookups.

export interface Domain {
  readonly name: string;
  readonly createdAt: number;
}

export interface User {
  /** The user's address, which is also the login name. */
  readonly address: string;
  /** Password hash in PHC string format (e.g. "$scrypt$ln=15,r=8,p=1$salt$hash"). */
  readonly passwordHash: string;
  readonly createdAt: number;
}

export interface Alias {
  /** "sales@example.test", or "@example.test" for a domain's catch-all. */
  readonly source: string;
  /** A local user or any other address. */
  readonly target: string;
}

/** Queue bookkeeping for one accepted message (the body lives in the spool). */
export interface QueueEntry {
  readonly queueId: string;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly size: number;
  readonly receivedAt: number;
  /** "active" while being delivered; later issues add "deferred" and "hold". */
  readonly state: 'active' | 'deferred' | 'hold';
}

export interface Store {
  addDomain(name: string): Promise<void>;
  /** Returns false if there was no such domain. */
  removeDomain(name: string): Promise<boolean>;
  listDomains(): Promise<Domain[]>;
  isLocalDomain(name: string): Promise<boolean>;

  addUser(address: string, passwordHash: string): Promise<void>;
  removeUser(address: string): Promise<boolean>;
  setPasswordHash(address: string, passwordHash: string): Promise<boolean>;
  getUser(address: string): Promise<User | undefined>;
  listUsers(domain?: string): Promise<User[]>;

  addAlias(source: string, target: string): Promise<void>;
  /** Removes one target of the alias, or all of them when target is omitted. */
  removeAlias(source: string, target?: string): Promise<boolean>;
  listAliases(): Promise<Alias[]>;
  /** Targets of an alias source ("sales@example.test" or "@example.test"); empty if none. */
  aliasTargets(source: string): Promise<string[]>;

  /** Records accepted messages (batched by the caller; one transaction). */
  queueInsert(entries: readonly QueueEntry[]): Promise<void>;
  /** Forgets messages that are fully delivered (or bounced). */
  queueRemove(queueIds: readonly string[]): Promise<void>;
  queueList(): Promise<QueueEntry[]>;

  close(): Promise<void>;
}

/** Thrown for admin mistakes (duplicate domain, unknown domain...); the CLI prints its message. */
export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}
