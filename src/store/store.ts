// Persistent state, one interface per concern: the directory (domains, users, aliases), the
// queue's bookkeeping, the submission policy's overrides and counters, and the greylist. Each part of the server
// asks for the narrowest one it needs. SQLite (sqlite-store.ts) implements all three as one Store;
// a PostgreSQL implementation fills the same seams, which is why every method is async even
// though better-sqlite3 is synchronous.
// Addresses and domains are stored normalized (see src/mail/address.ts): lower-case domain in
// A-label form, local part as given except that it is lower-cased for lookups.

import type { UserSecrets } from '../auth/user-secrets.js';

export interface Domain {
  readonly name: string;
  readonly createdAt: number;
}

/**
 * An account with its stored secrets (src/auth/user-secrets.ts): passwordHash is the PHC scrypt
 * string ("$scrypt$ln=15,r=8,p=1$salt$hash"); SCRAM and CRAM-MD5 secrets when they were computed.
 */
export interface User extends UserSecrets {
  /** The user's address, which is also the login name. */
  readonly address: string;
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
  /** "active": due or being delivered; "deferred": waiting for a retry; "hold": an operator stopped it. */
  readonly state: 'active' | 'deferred' | 'hold';
  /** RFC 3461 ENVID and RET of MAIL FROM, for the DSNs. */
  readonly envid?: string | undefined;
  readonly ret?: 'FULL' | 'HDRS' | undefined;
  /** The sender has had its "delayed" DSN (it is sent once). */
  readonly delayWarned?: boolean | undefined;
  /** Per-recipient delivery state, in envelope order; absent: every recipient still queued. */
  readonly recipientStates?: readonly QueueRecipientState[] | undefined;
}

/**
 * queued: not tried yet (or due now); deferred: a temporary failure, retried at nextAttemptAt;
 * delivered: done; failed: bounced (permanent failure, or deferred for longer than [queue] give_up).
 */
export type RecipientStatus = 'queued' | 'deferred' | 'delivered' | 'failed';

/** Where a recipient's delivery stands: what the queue keeps between attempts and restarts. */
export interface RecipientProgress {
  readonly status: RecipientStatus;
  readonly attempts: number;
  /** Milliseconds since the epoch; null once the recipient is finished. */
  readonly nextAttemptAt: number | null;
  readonly lastAttemptAt: number | null;
  /** The last SMTP reply about this recipient ("450 4.2.1 Mailbox busy"), or our own for local mail. */
  readonly lastReply: string | null;
  /** In plain words, why the last attempt did not deliver. */
  readonly lastReason: string | null;
  /** The server that gave lastReply. */
  readonly remoteHost: string | null;
}

/** One recipient's row: its progress, with the address and RFC 3461 parameters it belongs to. */
export interface QueueRecipientState extends RecipientProgress {
  readonly address: string;
  /** RFC 3461 NOTIFY as given ([] = NEVER); null: absent. */
  readonly notify: readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[] | null;
  /** RFC 3461 ORCPT. */
  readonly orcpt: { readonly addrType: string; readonly address: string } | null;
}

/**
 * An operator's request from `postern queue ...`, run by the server (the only writer of the queue):
 * flush retries every deferred recipient now; the others act on one message.
 */
export type QueueAction = 'flush' | 'retry' | 'hold' | 'release' | 'delete';

export interface QueueRequest {
  readonly id: number;
  readonly action: QueueAction;
  /** null for flush. */
  readonly queueId: string | null;
  readonly requestedAt: number;
}

export type SenderPolicy = 'strict' | 'any';

/** Per-account overrides of the [submission] defaults; an absent field means "the default". */
export interface UserLimits {
  readonly maxMessagesPerHour?: number;
  readonly maxRecipientsPerDay?: number;
  readonly senderPolicy?: SenderPolicy;
}

/** A change to UserLimits: a value sets the override, null clears it, absent leaves it. */
export type UserLimitsChange = {
  readonly [K in keyof UserLimits]?: UserLimits[K] | null;
};

/** One rate window as persisted: its start (ms), the count in it and in the window before. */
export interface RateWindowState {
  readonly start: number;
  readonly current: number;
  readonly previous: number;
}

/** An account's submission counters: messages per hour and recipients per day. */
export interface SubmissionCounters {
  readonly messages: RateWindowState;
  readonly recipients: RateWindowState;
}

/** Domains, users and aliases: who is local, and what an address reaches. */
export interface DirectoryStore {
  addDomain(name: string): Promise<void>;
  /** Returns false if there was no such domain. */
  removeDomain(name: string): Promise<boolean>;
  listDomains(): Promise<Domain[]>;
  isLocalDomain(name: string): Promise<boolean>;

  addUser(address: string, secrets: UserSecrets): Promise<void>;
  removeUser(address: string): Promise<boolean>;
  /** Replaces all of the account's secrets at once (a new password); false if no such user. */
  setUserSecrets(address: string, secrets: UserSecrets): Promise<boolean>;
  getUser(address: string): Promise<User | undefined>;
  listUsers(domain?: string): Promise<User[]>;

  addAlias(source: string, target: string): Promise<void>;
  /** Removes one target of the alias, or all of them when target is omitted. */
  removeAlias(source: string, target?: string): Promise<boolean>;
  listAliases(): Promise<Alias[]>;
  /** Targets of an alias source ("sales@example.test" or "@example.test"); empty if none. */
  aliasTargets(source: string): Promise<string[]>;
}

/** The queue's bookkeeping (the bodies live in the spool) and the operators' requests. */
export interface QueueStore {
  /** Records accepted messages, or replaces their entry with a newer one (batched by the caller; one transaction). */
  queueInsert(entries: readonly QueueEntry[]): Promise<void>;
  /** Forgets messages that are fully delivered (or bounced). */
  queueRemove(queueIds: readonly string[]): Promise<void>;
  /** Oldest first. */
  queueList(): Promise<QueueEntry[]>;
  queueGet(queueId: string): Promise<QueueEntry | undefined>;
  /** Files an operator's request (the CLI); returns its id. */
  queueAddRequest(action: QueueAction, queueId: string | null): Promise<number>;
  /** Requests not yet done, oldest first (the server polls this). */
  queueRequests(): Promise<QueueRequest[]>;
  /** Forgets requests the server has carried out. */
  queueRequestsDone(ids: readonly number[]): Promise<void>;
}

/** Per-account submission settings and counters (src/policy/sender-identity.ts, rate-limits.ts). */
export interface SubmissionStore {
  /** The account's overrides; {} when none are set (or no such user). */
  getUserLimits(account: string): Promise<UserLimits>;
  /** Sets (number/string), clears (null) or keeps (absent) each override; StoreError for an unknown user. */
  setUserLimits(account: string, change: UserLimitsChange): Promise<void>;
  /** `sender` is an address or "@domain"; StoreError for an unknown user or a duplicate. */
  addSenderGrant(account: string, sender: string): Promise<void>;
  removeSenderGrant(account: string, sender: string): Promise<boolean>;
  listSenderGrants(account: string): Promise<readonly string[]>;
  loadSubmissionCounters(account: string): Promise<SubmissionCounters | undefined>;
  /** Writes the counters of several accounts in one transaction. */
  saveSubmissionCounters(entries: ReadonlyMap<string, SubmissionCounters>): Promise<void>;
}

/** One greylist triplet (src/policy/greylist.ts): the client's network, the sender and the recipient, normalized. */
export interface GreylistTriplet {
  readonly client: string;
  readonly sender: string;
  readonly recipient: string;
}

/** When a triplet was first and last seen, in milliseconds since the epoch. */
export interface GreylistSighting {
  readonly firstSeen: number;
  readonly lastSeen: number;
}

/** A client network's successful retries, counted towards the greylist's auto-whitelist. */
export interface GreylistClient {
  readonly passed: number;
  /** The last time `passed` grew (or, once whitelisted, the client was last refreshed). */
  readonly lastSeen: number;
}

/** What the greylist may forget: see GreylistStore.purgeGreylist. */
export interface GreylistPurge {
  /** Triplets and clients last seen before this. */
  readonly seenBefore: number;
  /** Triplets that never passed (lastSeen - firstSeen < delayMs) and were last seen before this. */
  readonly unpassedSeenBefore: number;
  readonly delayMs: number;
}

/** The greylist's memory (src/policy/greylist.ts): it must outlive a restart, since clients retry minutes later. */
export interface GreylistStore {
  greylistSighting(triplet: GreylistTriplet): Promise<GreylistSighting | undefined>;
  saveGreylistSighting(triplet: GreylistTriplet, sighting: GreylistSighting): Promise<void>;
  greylistClient(client: string): Promise<GreylistClient | undefined>;
  saveGreylistClient(client: string, state: GreylistClient): Promise<void>;
  /** Deletes the rows the purge names; returns how many triplets and clients went. */
  purgeGreylist(purge: GreylistPurge): Promise<{ triplets: number; clients: number }>;
}

/** All of it, as one database holds it. */
export interface Store extends DirectoryStore, QueueStore, SubmissionStore, GreylistStore {
  close(): Promise<void>;
}

/** Thrown for admin mistakes (duplicate domain, unknown domain...); the CLI prints its message. */
export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}
