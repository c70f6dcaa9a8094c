// What an SMTP session needs from the world around it. The session (session.ts) is a pure state
// machine fed with bytes; the server wires it to a socket, and policy/ and queue/ answer its
// questions. Keeping these seams narrow is what lets the session be unit-tested and fuzzed.

import type { TlsInfo } from '../mail/tls-info.js';
import type { SaslMechanism } from '../sasl/mechanism.js';
import type { Envelope, ListenerKind, MailParams, QueueId, RcptParams } from '../mail/envelope.js';
import type { Reply } from '../mail/reply.js';
import type { SenderAuthReport } from '../sender-auth/verdict.js';


/** Limits a session enforces itself (the server enforces connection counts and timeouts). */
export interface SessionLimits {
  /** Largest message in octets, as announced in EHLO SIZE; larger -> 552 5.3.4. */
  readonly maxMessageSize: number;
  /** Recipients per transaction; more -> 452 4.5.3. */
  readonly maxRecipients: number;
  /** Longest command line in octets including CRLF (RFC 5321 4.5.3.1.4 says at least 512). */
  readonly maxCommandLine: number;
  /** Longest text line in DATA in octets including CRLF (RFC 5321 4.5.3.1.6: 1000). */
  readonly maxTextLine: number;
  /** Errors (4xx/5xx replies to commands) before the session is ended with 421. */
  readonly maxErrors: number;
  /** Transactions (messages) per connection before 421; 0 means unlimited. */
  readonly maxMessagesPerConnection: number;
}

export interface SessionConfig {
  /** Our hostname, used in the greeting and EHLO reply. */
  readonly hostname: string;
  readonly listener: ListenerKind;
  readonly limits: SessionLimits;
  /**
   * What to do with a bare LF or bare CR inside DATA/BDAT (SMTP smuggling, 2023):
   * "reject" answers 550 5.6.0 once the message ends; "normalize" turns them into CRLF.
   */
  readonly bareNewline: 'reject' | 'normalize';
  /** Whether STARTTLS is offered (the server has a certificate and this listener allows it). */
  readonly starttls: boolean;
  /**
   * Whether AUTH (RFC 4954) is offered: "after-tls" offers it once TLS is up (STARTTLS or
   * implicit TLS) and answers 530 before, so that no password ever crosses the wire in clear;
   * "never" (the MX listener, by default) does not know the command.
   */
  readonly auth: 'never' | 'after-tls';
  /** MAIL needs AUTH first (530 5.7.0, RFC 4954 6): the submission ports (RFC 6409). */
  readonly requireAuth: boolean;
  /** The SASL mechanisms, in order of preference; each says whether it fits the connection. */
  readonly mechanisms: readonly SaslMechanism[];
}

/** The connection facts the policy sees for each question. */
export interface SessionInfo {
  readonly clientIp: string;
  readonly clientPort: number;
  readonly listener: ListenerKind;
  readonly helo: string | undefined;
  readonly tls: TlsInfo | undefined;
  readonly authUser: string | undefined;
  /** MAIL FROM of the open transaction ('' for the null sender); absent outside a transaction. */
  readonly sender?: string | undefined;
  /** The connect-time DNS lists vouched for the client (see ClientStanding). */
  readonly dnsAllowlisted?: boolean;
}

/** What the connect-time screen (src/server/client-screen.ts) learned, given to SmtpSession.start. */
export interface ClientStanding {
  /** Allowlists outweighed blocklists: the DNS list score was below zero. */
  readonly dnsAllowlisted: boolean;
}

export type RecipientDecision =
  | {
      readonly accept: true;
      /** The recipient, normalized (lower-case A-label domain): what the envelope records. */
      readonly address: string;
      /** Local user addresses it resolves to (aliases expanded); empty for remote recipients. */
      readonly mailboxes: readonly string[];
      /**
       * Addresses on other domains that an alias on a local domain expands to: the queue relays a
       * copy to each. Absent or empty for everything that is not such an alias.
       */
      readonly forwards?: readonly string[];
      /** Overrides the default "250 2.1.5 OK". */
      readonly reply?: Reply;
    }
  | { readonly accept: false; readonly reply: Reply };

/** Policy questions the session asks; answers come from src/policy/. */
export interface SessionPolicy {
  /** MAIL FROM: undefined to accept, or the refusal. `sender` is '' for the null sender. */
  checkSender(info: SessionInfo, sender: string, params: MailParams): Promise<Reply | undefined>;
  /**
   * RCPT TO: accept (with local mailboxes) or refuse (550 5.1.1 unknown user, 554 5.7.1 relay).
   * `accepted`: recipients already accepted in this transaction (per-account limits count them).
   */
  checkRecipient(info: SessionInfo, recipient: string, params: RcptParams, accepted?: number): Promise<RecipientDecision>;
  /** The complete message, before it is stored: undefined to accept, or the refusal. */
  checkMessage(info: SessionInfo, envelope: Envelope, message: Buffer): Promise<Reply | undefined>;
  /** The message was stored (the client got 250): for per-account counters. Never throws. */
  messageAccepted(info: SessionInfo, envelope: Envelope): Promise<void>;
}

/**
 * Sender authentication of a complete message (SPF, DKIM, DMARC, ARC, iprev), asked after
 * checkMessage and before the sink: the message to store, with its Authentication-Results field,
 * or the refusal. Answered by src/policy/sender-auth-policy.ts; the server gives one to the MX
 * listener only.
 */
export interface MessageAuthenticator {
  authenticate(info: SessionInfo, envelope: Envelope, message: Buffer): Promise<AuthenticatedMessage>;
}

export type AuthenticatedMessage =
  /** Not checked (an authenticated or trusted client): stored as it came. */
  | { readonly kind: 'unchecked' }
  /** Stored as `envelope` and `message` say (the header field added, perhaps quarantined). */
  | { readonly kind: 'accept'; readonly envelope: Envelope; readonly message: Buffer; readonly report: SenderAuthReport }
  | { readonly kind: 'refuse'; readonly reply: Reply; readonly report: SenderAuthReport };

/**
 * Guessing passwords through AUTH (RFC 4954 9), answered by policy/auth-throttle.ts. `ip` is the
 * client's address; `account` the name the client claimed, when the mechanism learned one.
 */
export interface AuthGuard {
  /** Before an exchange: undefined to go ahead, or the refusal (the IP is locked out). */
  beforeAttempt(ip: string): Reply | undefined;
  /** A failed exchange: counts it, logs it, and says how many ms to wait before the 535. */
  failure(ip: string, account: string | undefined, mechanism: string): number;
  success(ip: string, account: string): void;
  /** Asked after the mechanism accepted the credentials: a locked account must still fail. */
  isAccountLocked(account: string): boolean;
}

/**
 * Where accepted messages go. `accept` resolves only once the message and its envelope are
 * durable (written and fsync'd); only then does the session answer 250. It may throw SmtpError.
 */
export interface MessageSink {
  accept(envelope: Envelope, message: Buffer): Promise<QueueId>;
}

/** What the session does to its connection. */
export interface SessionIo {
  /** Write raw bytes (already formatted replies). */
  write(data: string): void;
  /** Upgrade to TLS after "220 Ready to start TLS" was written; resolves when the handshake is done. */
  startTls(): Promise<TlsInfo>;
  /** Close the connection after pending writes are flushed. */
  close(): void;
  /** Backpressure: stop/start reading from the socket while the session is busy. */
  pause(): void;
  resume(): void;
}

/** Events for the log: one per transaction outcome and per connection end. */
export interface SessionEvents {
  transaction?(event: TransactionEvent): void;
  /** Every reply the session sends, as it is queued (the greeting and refusals included). */
  reply?(reply: Reply): void;
}

export interface TransactionEvent {
  readonly queueId: QueueId | undefined;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly size: number;
  /** The final reply the client got for the message. */
  readonly outcome: Reply;
  /** The account the client authenticated as (AUTH), if any. */
  readonly authUser?: string | undefined;
  /** What sender authentication found and did; undefined when the message was not checked. */
  readonly senderAuth?: SenderAuthReport | undefined;
}
