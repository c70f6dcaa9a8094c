// The peer's replies as an ordered stream over whichever socket currently carries the session:
// the plain one, then the TLS one after STARTTLS. Each wait has its own deadline (RFC 5321
// 4.5.3.2); a timeout, a closed connection or a protocol error poisons the stream for good, since
// after any of them we no longer know where in the dialogue the peer is.

import type { Socket } from 'node:net';
import type { Reply } from '../../mail/reply.js';
import { ReplyParser, ReplySyntaxError } from './peer-reply.js';

/** A connection-level failure: the session is over; another host or a later attempt may work. */
export class SmtpClientError extends Error {
  override readonly name = 'SmtpClientError';
  /** The reply that ended the session, when there was one (e.g. a 421 or a 554 greeting). */
  readonly reply: Reply | undefined;
  constructor(message: string, options: { reply?: Reply; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.reply = options.reply;
  }
}

interface Waiter {
  readonly resolve: (r: Reply) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class ReplyStream {
  private readonly parser = new ReplyParser();
  private readonly replies: Reply[] = [];
  private waiter: Waiter | undefined;
  private failure: Error | undefined;
  private socket: Socket | undefined;

  constructor(private readonly peer: string) {}

  private readonly onData = (chunk: Buffer): void => {
    let parsed: Reply[];
    try {
      parsed = this.parser.push(chunk);
    } catch (err) {
      const reason = err instanceof ReplySyntaxError ? err.message : String(err);
      this.fail(new SmtpClientError(`protocol error from ${this.peer}: ${reason}`, { cause: err }));
      return;
    }
    this.replies.push(...parsed);
    this.wake();
  };

  private readonly onError = (err: Error): void => {
    // Our own SmtpClientError (a session cut at shutdown) already says what happened.
    this.fail(err instanceof SmtpClientError ? err : new SmtpClientError(`connection to ${this.peer} failed: ${errorText(err)}`, { cause: err }));
  };

  private readonly onClose = (): void => {
    this.fail(new SmtpClientError(`connection to ${this.peer} closed by the peer`));
  };

  /** Reads from `socket` from now on (and stops reading the previous one). */
  attach(socket: Socket): void {
    this.detach();
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  /** Stops reading, e.g. before TLS takes the socket over. */
  detach(): void {
    const s = this.socket;
    if (!s) return;
    s.removeListener('data', this.onData);
    s.removeListener('error', this.onError);
    s.removeListener('close', this.onClose);
    this.socket = undefined;
  }

  /** Whether the peer sent anything beyond the replies read so far. */
  get hasUnreadInput(): boolean {
    return this.replies.length > 0 || this.parser.hasBufferedInput;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** The next reply; rejects with SmtpClientError on timeout or a broken connection. */
  next(timeoutMs: number, waitingFor: string): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error('ReplyStream: one reader at a time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new SmtpClientError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${waitingFor} from ${this.peer}`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Ends the stream with `err`: pending and future reads reject, and the socket is destroyed. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.socket?.destroy();
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    const next = this.replies.shift();
    if (next) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(next);
    } else if (this.failure) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
  }
}

export function errorText(err: unknown): string {
  if (err && typeof err === 'object') {
    const code = (err as { code?: unknown }).code;
    const message = (err as { message?: unknown }).message;
    if (typeof code === 'string' && typeof message === 'string' && !message.includes(code)) return `${code} ${message}`;
    if (typeof message === 'string') return message;
  }
  return String(err);
}
