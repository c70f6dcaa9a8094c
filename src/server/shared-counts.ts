// The counts that worker mode (src/server/workers.ts) keeps for the whole server rather than per
// process: the AUTH throttle's failures and lockouts (src/policy/auth-throttle.ts) and the
// [limits] client_message_rate counts (src/policy/client-rate.ts). How they stay whole:
//
//   session worker A --'auth' / 'message-counted'--> primary --same message--> workers B, C, ...
//                                                      |
//                                                      +-- counts it too, in its own copy
//   new session worker <--'counts' (the copy's records)-- primary, when the worker reports ready
//
// Without the primary's copy a session worker started again (after a crash, or a SIGKILL a
// client managed to provoke) would begin with empty counts: a reset button for brute-force
// lockouts and rate limits. The copy is the same AuthThrottle and RateTable code a worker runs,
// so it is bounded exactly as a worker's counts are: [auth.throttle] max_tracked IPs and accounts,
// MAX_TRACKED_CLIENTS message counts, the least recently seen forgotten first, and only records
// still in force are handed over. The records carry absolute times, so a window or lockout ends
// in the new worker when it would have in the others.
//
// The hand-over leaves no gap: the primary sends 'counts' in the same turn in which it marks the
// worker ready, so every event it relayed before is in the records and every later one is relayed
// to the new worker too; the IPC channel keeps order, so the records arrive before any connection.

import type { AuthThrottle, AuthThrottleRecords } from '../policy/auth-throttle.js';
import type { ClientRateLimits } from '../policy/client-rate.js';
import type { RateWindowState } from '../store/store.js';
import type { AuthEvent, MessageCounted } from './worker-protocol.js';

/** What a session worker gets when it starts: the server's counts in force. */
export interface CountsRecords {
  readonly auth: AuthThrottleRecords;
  readonly messages: readonly (readonly [string, RateWindowState])[];
}

/** One process's AUTH throttle and client message rates, as one side of the sharing above. */
export class SharedCounts {
  constructor(
    private readonly throttle: AuthThrottle,
    private readonly rates: ClientRateLimits,
  ) {}

  /** An event another process saw: counted, not logged again, never refused here. */
  countElsewhere(event: AuthEvent | MessageCounted): void {
    if (event.type === 'message-counted') this.rates.messageElsewhere(event.ip);
    else if (event.outcome === 'failure') this.throttle.failureElsewhere(event.ip, event.account);
    else if (event.account !== undefined) this.throttle.success(event.ip, event.account);
  }

  records(): CountsRecords {
    return { auth: this.throttle.records(), messages: this.rates.messageRecords() };
  }

  /** Into a fresh process's counts, before it serves anyone. */
  restore(records: CountsRecords): void {
    this.throttle.restore(records.auth);
    this.rates.restoreMessages(records.messages);
  }
}
