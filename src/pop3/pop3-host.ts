// What a POP3 session (RFC 1939) needs from the world around it, in the shape of the SMTP
// session's seams (src/smtp/session-host.ts): the session is a pure state machine fed with bytes;
// the server wires it to a socket, a maildrop and the login checks.

import type { TlsInfo } from '../mail/tls-info.js';
import type { SaslMechanism } from '../sasl/mechanism.js';

/** What the session does to its connection. */
export interface Pop3Io {
  /** Write raw bytes (already formatted responses, CRLF line ends, dot-stuffed multi-line). */
  write(data: string | Buffer): void;
  /** Upgrade to TLS after "+OK Begin TLS negotiation" was written (RFC 2595 4). */
  startTls(): Promise<TlsInfo>;
  /** Close the connection after pending writes are flushed. */
  close(): void;
  /** Stop reading from the socket (too much input waits unprocessed) / start again. */
  pause(): void;
  resume(): void;
}

/** One message of a maildrop as the session lists it. */
export interface MaildropMessage {
  /** RFC 1939 7: 1-70 characters 0x21-0x7E, the same for this message forever, never reused. */
  readonly uidl: string;
  /** Exact octets of the message as RETR sends it, with CRLF line ends (before dot-stuffing). */
  readonly size: number;
}

/** A locked maildrop: the messages as they were when the session entered TRANSACTION. */
export interface Maildrop {
  readonly messages: readonly MaildropMessage[];
  /** The message (0-based index into `messages`) with CRLF line ends, not dot-stuffed. */
  read(index: number): Promise<Buffer>;
  /**
   * UPDATE state (RFC 1939 6): removes these messages (0-based indexes), then releases the lock.
   * If it throws, the session calls release() and tells the client that not all were removed.
   */
  commit(deleted: readonly number[]): Promise<void>;
  /** Releases the lock without deleting anything (the connection dropped, or no QUIT). */
  release(): void;
}

export interface MaildropOpener {
  /** Locks the account's maildrop; 'in-use' when another session holds it (RFC 2449 [IN-USE]). */
  open(account: string): Promise<Maildrop | 'in-use'>;
}

/**
 * Brute-force accounting, shared with SMTP AUTH (one counter per client IP and per account across
 * both protocols): the same AuthGuard the SMTP session uses (src/smtp/session-host.ts), whose
 * replies the POP3 session turns into "-ERR [AUTH] ..." / "-ERR [SYS/TEMP] ..." lines.
 */
export interface Pop3Guard {
  /** Before a login attempt: true when the client IP is locked out. */
  ipLocked(ip: string): boolean;
  /** A failed login: counts it, logs it, says how many ms to wait before the -ERR. */
  failure(ip: string, account: string | undefined, mechanism: string): number;
  success(ip: string, account: string): void;
  isAccountLocked(account: string): boolean;
}

export interface Pop3Config {
  /** Our name in the greeting. */
  readonly hostname: string;
  /** STLS offered (the pop3 listener); false on pop3s, where TLS is already up. */
  readonly stls: boolean;
  /** SASL mechanisms in the order offered (AUTH and CAPA's SASL line); PLAIN/LOGIN only inside TLS. */
  readonly mechanisms: readonly SaslMechanism[];
  readonly limits: {
    /** Longest command line, CRLF included (RFC 2449 4: 255 octets). */
    readonly maxCommandLine: number;
    /** Commands in one session before it is closed. */
    readonly maxCommands: number;
    /** Failed commands before the session is closed. */
    readonly maxErrors: number;
  };
}

/** The session's one log line (the same facts the SMTP log line has). */
export interface Pop3SessionStats {
  readonly account: string | undefined;
  readonly retrieved: number;
  readonly deleted: number;
  readonly commands: number;
  /** -ERR responses to the client's mistakes (what limits.maxErrors counts): not SYS/TEMP, not IN-USE. */
  readonly errors: number;
}

export interface Pop3Options {
  readonly config: Pop3Config;
  readonly clientIp: string;
  readonly io: Pop3Io;
  readonly maildrops: MaildropOpener;
  /** Checks a USER/PASS password: the account's normalized name, or undefined (same answer either way). */
  readonly checkPassword: (user: string, password: string) => Promise<string | undefined>;
  readonly guard: Pop3Guard;
  /** TLS already up (pop3s, implicit TLS). */
  readonly tls?: TlsInfo | undefined;
  readonly logger?: { error(obj: object, msg: string): void; info(obj: object, msg: string): void } | undefined;
  /** Waits out the guard's delay before a failed login is answered; tests replace the timer. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}
