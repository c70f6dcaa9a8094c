// The server side of one POP3 connection (RFC 1939, with CAPA and response codes from RFC 2449,
// STLS from RFC 2595 and AUTH from RFC 5034), as a state machine with no I/O of its own: the
// server feeds it bytes (receive) and it answers through Pop3Io. Commands are handled strictly one
// at a time, in order; bytes that arrive meanwhile wait in a queue, and the responses to a
// pipelined batch go out together once no further complete command is waiting (RFC 2449 6.6).
//
// The protocol state (RFC 1939 3):
//
//   AUTHORIZATION --USER/PASS or AUTH, maildrop locked--> TRANSACTION --QUIT--> UPDATE --> ended
//        |                                                     |
//        +--QUIT, or the connection ends----------> ended <----+-- the connection ends, a
//                                                                  timeout, shutdown: release(),
//                                                                  nothing is deleted
//
// Every command handler answers one way: it returns an Answer and act() carries it out. Only
// act() and the session's own events (the greeting, a timeout, shutdown) put responses on the wire.

import type { TlsInfo } from '../mail/tls-info.js';
import type { SaslContext, SaslMechanism } from '../sasl/mechanism.js';
import { AUTH_FAILED, AuthExchange, loginFailed, loginSucceeded, openAuth, SASL_MAX_LINE, type AuthExchangeOptions, type AuthTurn } from './auth-exchange.js';
import { parseCommand, type Command } from './command.js';
import { InputQueue } from '../util/input-queue.js';
import { LineReader, type BadLineReason, type LineEvent } from '../util/line-reader.js';
import type { Maildrop, MaildropMessage, Pop3Config, Pop3Io, Pop3Options, Pop3SessionStats } from './pop3-host.js';
import { err, formatResponse, ok, topOfMessage, type Pop3Response } from './response.js';

type Pop3State =
  /** `user`: the name a USER command gave, waiting for PASS. */
  | { readonly kind: 'authorization'; readonly user: string | undefined }
  /** The maildrop is locked; `deleted` holds 0-based indexes marked by DELE (RFC 1939 5). */
  | { readonly kind: 'transaction'; readonly account: string; readonly maildrop: Maildrop; readonly deleted: Set<number> }
  /** After QUIT in TRANSACTION: the deletions are being committed (RFC 1939 6). */
  | { readonly kind: 'update' }
  /** The maildrop, if there was one, has been committed or released: nothing more happens. */
  | { readonly kind: 'ended' };

/** What the bytes from the client are, right now. */
type InputMode =
  | { readonly kind: 'command' }
  /** Lines that answer a "+ " challenge of an AUTH exchange (RFC 5034 4), not commands. */
  | { readonly kind: 'sasl'; readonly exchange: AuthExchange }
  /** Between "+OK Begin TLS negotiation" and the end of the handshake: plaintext is dropped. */
  | { readonly kind: 'tls-handshake' }
  | { readonly kind: 'closed' };

/** A complete line, ready to be acted on. */
type InputEvent =
  | { readonly kind: 'command-line'; readonly line: LineEvent }
  | { readonly kind: 'sasl-line'; readonly line: LineEvent; readonly exchange: AuthExchange };

/** What a command handler answers. act() writes the response and counts it; no handler writes. */
type Answer =
  | { readonly kind: 'respond'; readonly response: Pop3Response }
  /** A "+ " challenge; the next line is the client's SASL response. */
  | { readonly kind: 'challenge'; readonly exchange: AuthExchange; readonly response: Pop3Response }
  /** The response, then the end of the connection. */
  | { readonly kind: 'close'; readonly response: Pop3Response }
  /** "+OK Begin TLS negotiation", then the handshake (RFC 2595 4). */
  | { readonly kind: 'stls' };

const COMMAND: InputMode = { kind: 'command' };
const CLOSED: InputMode = { kind: 'closed' };

const NO_SUCH_MESSAGE = err('No such message');
const NOT_LOGGED_IN = err('Not logged in');
const ALREADY_LOGGED_IN = err('Already logged in');
const UNKNOWN_COMMAND = err('Unknown command');
/** RFC 3206 4: SYS/TEMP, a problem on our side that may go away; the client should try later. */
const INTERNAL_ERROR = err('Internal error, try again later', 'SYS/TEMP');
/** The client IP is locked out after too many failed logins; the lockout expires. */
const LOCKED_OUT = err('Too many failed logins, try again later', 'SYS/TEMP');

const BAD_LINE: Record<BadLineReason, Pop3Response> = {
  'bare-newline': err('Bare CR or LF in command; lines must end with CRLF'),
  nul: err('NUL character in command'),
  'too-long': err('Command line too long'),
  'not-utf8': err('Command is not valid UTF-8'),
};

export class Pop3Session {
  private readonly config: Pop3Config;
  private readonly io: Pop3Io;
  private readonly lines: LineReader;
  private readonly input: InputQueue;
  private readonly authOptions: AuthExchangeOptions;

  private mode: InputMode = COMMAND;
  private state: Pop3State = { kind: 'authorization', user: undefined };
  private tlsInfo: TlsInfo | undefined;

  private started = false;
  private shuttingDown = false;
  private running = false;
  private out: Array<string | Buffer> = [];

  private readonly counters = { account: undefined as string | undefined, retrieved: 0, deleted: 0, commands: 0, errors: 0 };

  constructor(private readonly opts: Pop3Options) {
    this.config = opts.config;
    this.io = opts.io;
    this.tlsInfo = opts.tls;
    this.input = new InputQueue(opts.io);
    // Room for AUTH with a long initial response and for SASL response lines (RFC 5034 4); other
    // commands are held to the configured limit once read (dispatch), so they stay in step.
    this.lines = new LineReader(Math.max(opts.config.limits.maxCommandLine, SASL_MAX_LINE));
    this.authOptions = { guard: opts.guard, clientIp: opts.clientIp, sleep: opts.sleep ?? sleep };
  }

  /** True while a command is being acted on (the session is not waiting for input). */
  get busy(): boolean {
    return this.running;
  }

  get closed(): boolean {
    return this.mode.kind === 'closed';
  }

  get stats(): Pop3SessionStats {
    return { ...this.counters };
  }

  /** Sends the greeting (RFC 1939 4). No APOP timestamp: APOP is not offered. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.out.push(formatResponse(ok(`${this.config.hostname} POP3 server ready`)));
    this.flush();
    this.kick();
  }

  receive(chunk: Buffer): void {
    if (this.closed || chunk.length === 0) return;
    // RFC 2595 4 / CVE-2011-0411: nothing sent before the TLS handshake may be acted on after it.
    if (this.mode.kind === 'tls-handshake') return;
    this.input.push(chunk);
    if (this.started) this.kick();
    // What the commands handled so far left unread outlives this call: the chunk may not.
    this.input.keep();
  }

  /** The autologout timer ran out (RFC 1939 3): close without entering UPDATE. */
  timeout(): void {
    if (this.closed) return;
    this.closeWith(err('Autologout: idle for too long, closing connection'));
  }

  /** The server is going down: the current command is finished first, then the session ends. */
  shutdown(): void {
    if (this.closed) return;
    this.shuttingDown = true;
    if (!this.running) this.closeForShutdown();
  }

  /** The connection is gone: nothing more is written, and the maildrop is released, not updated. */
  disconnected(): void {
    if (this.closed) return;
    this.out = [];
    this.mode = CLOSED;
    this.dropInput();
    if (!this.running) this.releaseMaildrop();
  }

  // ---- the input loop -------------------------------------------------------------------------

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        const event = this.nextEvent();
        if (event === undefined) break;
        const pending = this.handle(event);
        if (pending) {
          // Answers so far go out before anything that may take a while (a hash, the maildrop).
          this.flush();
          await pending;
        }
        if (this.shuttingDown && !this.closed) this.closeForShutdown();
      }
      this.flush();
      if (!this.closed) this.input.caughtUp();
    } catch (e) {
      // attempt() answers the handlers' errors; this is a fault in the session or in Pop3Io.
      this.opts.logger?.error({ err: e }, 'pop3 session failed');
      this.close();
    } finally {
      this.running = false; // synchronous with the decision to stop: no receive() slips between
      if (this.closed) this.releaseMaildrop();
    }
  }

  /** Takes the next complete line from the queue, or undefined if more bytes are needed. */
  private nextEvent(): InputEvent | undefined {
    for (;;) {
      const mode = this.mode;
      if (mode.kind === 'tls-handshake' || mode.kind === 'closed') return undefined;
      const next = this.input.peek();
      if (next === undefined) return undefined;
      const read = this.lines.read(next.chunk, next.offset);
      this.input.consume(read.offset - next.offset);
      if (read.event === undefined) continue;
      if (mode.kind === 'sasl') {
        // Back to commands unless the answer continues the exchange, also when it throws.
        this.mode = COMMAND;
        return { kind: 'sasl-line', line: read.event, exchange: mode.exchange };
      }
      return { kind: 'command-line', line: read.event };
    }
  }

  /** Acts on one line; a returned promise is awaited before the next. */
  private handle(event: InputEvent): Promise<void> | undefined {
    const answer = this.attempt(() => this.dispatch(event));
    return answer instanceof Promise ? answer.then((a) => this.act(a)) : this.act(answer);
  }

  private dispatch(event: InputEvent): Answer | Promise<Answer> {
    switch (event.kind) {
      case 'command-line': {
        const line = event.line;
        this.counters.commands += 1;
        if (this.counters.commands > this.config.limits.maxCommands) {
          return { kind: 'close', response: err('Too many commands, closing connection') };
        }
        if (line.kind === 'bad') return say(BAD_LINE[line.reason]);
        const cmd = parseCommand(line.text);
        // RFC 2449 4: 255 octets for a command line; AUTH's initial response may be longer.
        if (cmd.verb !== 'AUTH' && Buffer.byteLength(line.text) + 2 > this.config.limits.maxCommandLine) {
          return say(BAD_LINE['too-long']);
        }
        return this.command(cmd);
      }
      case 'sasl-line':
        return this.saslResponse(event.exchange, event.line);
    }
  }

  private command(cmd: Command): Answer | Promise<Answer> {
    const state = this.state;
    switch (state.kind) {
      case 'authorization':
        return this.authorization(cmd, state.user);
      case 'transaction':
        return this.transaction(cmd, state);
      case 'update':
      case 'ended':
        // Nothing is read once QUIT was taken or the session ended.
        throw new Error(`command in state ${state.kind}`);
    }
  }

  private authorization(cmd: Command, user: string | undefined): Answer | Promise<Answer> {
    switch (cmd.verb) {
      case 'CAPA':
        return say(this.capabilities());
      case 'USER': {
        const refusal = this.refuseLogin();
        if (refusal) return say(refusal);
        this.state = { kind: 'authorization', user: cmd.name };
        // The same answer for every name: USER must not tell which mailboxes exist.
        return say(ok('Send PASS'));
      }
      case 'PASS': {
        const refusal = this.refuseLogin();
        if (refusal) return say(refusal);
        if (user === undefined) return say(err('Send USER first'));
        return this.pass(user, cmd.password);
      }
      case 'AUTH':
        return this.auth(cmd.mechanism, cmd.initialResponse);
      case 'APOP':
        // APOP needs the plaintext password stored on the server (RFC 1939 7); we keep hashes.
        return say(err('APOP is not offered; use STLS, then USER/PASS or AUTH'));
      case 'STLS':
        return this.stls();
      case 'QUIT':
        this.state = { kind: 'ended' };
        return { kind: 'close', response: ok(`${this.config.hostname} POP3 server signing off`) };
      case 'STAT':
      case 'LIST':
      case 'UIDL':
      case 'RETR':
      case 'TOP':
      case 'DELE':
      case 'NOOP':
      case 'RSET':
        return say(NOT_LOGGED_IN);
      case 'invalid':
        return say(err(`Syntax: ${cmd.syntax}`));
      case 'unknown':
        return say(UNKNOWN_COMMAND);
    }
  }

  private transaction(cmd: Command, st: Extract<Pop3State, { kind: 'transaction' }>): Answer | Promise<Answer> {
    switch (cmd.verb) {
      case 'CAPA':
        return say(this.capabilities());
      case 'STAT': {
        const live = this.live(st);
        return say(ok(`${live.length} ${octets(live)}`));
      }
      case 'LIST':
      case 'UIDL': {
        const field = (n: number, m: MaildropMessage) => (cmd.verb === 'LIST' ? `${n} ${m.size}` : `${n} ${m.uidl}`);
        if (cmd.message === undefined) {
          const live = this.live(st);
          const text = cmd.verb === 'LIST' ? `${live.length} messages (${octets(live)} octets)` : 'Unique-ID listing follows';
          return say({ kind: 'lines', text, lines: live.map(({ number, message }) => field(number, message)) });
        }
        const found = this.find(st, cmd.message);
        return say(found.kind === 'found' ? ok(field(cmd.message, found.message)) : NO_SUCH_MESSAGE);
      }
      case 'RETR':
        return this.retrieve(st, cmd.message, undefined);
      case 'TOP':
        return this.retrieve(st, cmd.message, cmd.lines);
      case 'DELE': {
        const found = this.find(st, cmd.message);
        if (found.kind === 'deleted') return say(err(`Message ${cmd.message} already deleted`));
        if (found.kind === 'none') return say(NO_SUCH_MESSAGE);
        st.deleted.add(found.index);
        return say(ok(`Message ${cmd.message} deleted`));
      }
      case 'NOOP':
        return say(ok(''));
      case 'RSET': {
        // RFC 1939 5: RSET unmarks every message marked as deleted.
        st.deleted.clear();
        const live = this.live(st);
        return say(ok(`Maildrop has ${live.length} messages (${octets(live)} octets)`));
      }
      case 'QUIT':
        return this.update(st);
      case 'USER':
      case 'PASS':
      case 'AUTH':
      case 'APOP':
        return say(ALREADY_LOGGED_IN);
      case 'STLS':
        // RFC 2595 4: STLS is only permitted in the AUTHORIZATION state.
        return say(err('STLS is only allowed before login'));
      case 'invalid':
        return say(err(`Syntax: ${cmd.syntax}`));
      case 'unknown':
        return say(UNKNOWN_COMMAND);
    }
  }

  // ---- AUTHORIZATION: logging in ----------------------------------------------------------------

  /**
   * Why a password may not be sent now, or undefined when it may. RFC 2595 2 and RFC 8314: never
   * take a password over an unencrypted connection; the client is pointed at STLS.
   */
  private refuseLogin(): Pop3Response | undefined {
    if (this.tlsInfo) return undefined;
    return this.config.stls ? err('Must issue STLS first: no login without TLS', 'AUTH') : err('Login is only possible over TLS', 'AUTH');
  }

  private async pass(user: string, password: string): Promise<Answer> {
    // RFC 1939 7: after a failed PASS the client starts again with USER.
    this.state = { kind: 'authorization', user: undefined };
    if (this.opts.guard.ipLocked(this.opts.clientIp)) return say(LOCKED_OUT);
    const account = await this.opts.checkPassword(user, password);
    // The right password for a locked account fails like a wrong one (no oracle for guessers).
    if (account === undefined || this.opts.guard.isAccountLocked(account)) {
      await loginFailed(this.authOptions, account ?? user, 'USER');
      return say(AUTH_FAILED);
    }
    loginSucceeded(this.authOptions, account, 'USER');
    return this.login(account);
  }

  private async auth(mechanism: string | undefined, initial: string | undefined): Promise<Answer> {
    const refusal = this.refuseLogin();
    if (refusal) return say(refusal);
    const offered = this.offeredMechanisms();
    if (mechanism === undefined) {
      return say({ kind: 'lines', text: 'Mechanisms follow', lines: offered.map((m) => m.name) });
    }
    const opening = openAuth(mechanism, initial, offered);
    if (opening.kind === 'refused') return say(opening.response);
    if (this.opts.guard.ipLocked(this.opts.clientIp)) return say(LOCKED_OUT);
    this.state = { kind: 'authorization', user: undefined };
    const exchange = new AuthExchange(opening.mechanism, this.saslContext(), this.authOptions);
    return this.authTurn(exchange, await exchange.start(opening.initialResponse));
  }

  private async saslResponse(exchange: AuthExchange, line: LineEvent): Promise<Answer> {
    return this.authTurn(exchange, await exchange.respond(line));
  }

  private authTurn(exchange: AuthExchange, turn: AuthTurn): Answer | Promise<Answer> {
    switch (turn.kind) {
      case 'challenge':
        return { kind: 'challenge', exchange, response: turn.response };
      case 'authenticated':
        return this.login(turn.account);
      case 'ended':
        return say(turn.response);
    }
  }

  /** The credentials were right: lock the maildrop and enter TRANSACTION (RFC 1939 4). */
  private async login(account: string): Promise<Answer> {
    this.counters.account = account;
    const maildrop = await this.opts.maildrops.open(account);
    // RFC 2449 8.1.1: another session holds the maildrop; the client may try again later.
    if (maildrop === 'in-use') return say(err('Mailbox in use', 'IN-USE'));
    // Set even if the connection ended meanwhile: run() then releases it.
    this.state = { kind: 'transaction', account, maildrop, deleted: new Set() };
    const all = maildrop.messages;
    return say(ok(`Logged in, ${all.length} messages (${all.reduce((sum, m) => sum + m.size, 0)} octets)`));
  }

  private stls(): Answer {
    if (this.tlsInfo) return say(err('Command not permitted when TLS active'));
    if (!this.config.stls) return say(err('STLS is not offered'));
    return { kind: 'stls' };
  }

  private offeredMechanisms(): SaslMechanism[] {
    const ctx = this.saslContext();
    return this.config.mechanisms.filter((m) => m.available(ctx));
  }

  private saslContext(): SaslContext {
    const tls = this.tlsInfo;
    return { secure: tls !== undefined, channelBinding: tls?.channelBinding, hostname: this.config.hostname };
  }

  /**
   * RFC 2449 5: the capabilities. USER and SASL only once a login is possible (inside TLS), so a
   * client never sends a password in the clear because CAPA invited it; STLS until TLS is up.
   */
  private capabilities(): Pop3Response {
    const lines = ['TOP', 'UIDL'];
    if (!this.refuseLogin()) {
      lines.push('USER');
      const mechanisms = this.offeredMechanisms();
      if (mechanisms.length > 0) lines.push(`SASL ${mechanisms.map((m) => m.name).join(' ')}`);
    }
    lines.push('RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING');
    if (this.config.stls && !this.tlsInfo) lines.push('STLS');
    lines.push('IMPLEMENTATION Postern');
    return { kind: 'lines', text: 'Capability list follows', lines };
  }

  // ---- TRANSACTION: the maildrop ------------------------------------------------------------------

  /** The messages not marked as deleted, with their 1-based numbers (RFC 1939 5 hides the others). */
  private live(st: Extract<Pop3State, { kind: 'transaction' }>): Array<{ number: number; message: MaildropMessage }> {
    const live: Array<{ number: number; message: MaildropMessage }> = [];
    st.maildrop.messages.forEach((message, index) => {
      if (!st.deleted.has(index)) live.push({ number: index + 1, message });
    });
    return live;
  }

  private find(
    st: Extract<Pop3State, { kind: 'transaction' }>,
    number: number,
  ): { kind: 'found'; index: number; message: MaildropMessage } | { kind: 'deleted' } | { kind: 'none' } {
    const index = number - 1;
    const message = number >= 1 ? st.maildrop.messages[index] : undefined;
    if (message === undefined) return { kind: 'none' };
    return st.deleted.has(index) ? { kind: 'deleted' } : { kind: 'found', index, message };
  }

  /** RETR n, or TOP n lines (RFC 1939 7). */
  private async retrieve(st: Extract<Pop3State, { kind: 'transaction' }>, number: number, lines: number | undefined): Promise<Answer> {
    const found = this.find(st, number);
    if (found.kind === 'deleted') return say(err(`Message ${number} is deleted`));
    if (found.kind === 'none') return say(NO_SUCH_MESSAGE);
    const data = await st.maildrop.read(found.index);
    if (lines !== undefined) return say({ kind: 'message', text: 'Top of message follows', data: topOfMessage(data, lines) });
    this.counters.retrieved += 1;
    return say({ kind: 'message', text: `${found.message.size} octets`, data });
  }

  /** QUIT in TRANSACTION: the UPDATE state removes the marked messages (RFC 1939 6). */
  private async update(st: Extract<Pop3State, { kind: 'transaction' }>): Promise<Answer> {
    this.state = { kind: 'update' };
    const deleted = [...st.deleted].sort((a, b) => a - b);
    try {
      await st.maildrop.commit(deleted);
    } catch (e) {
      this.opts.logger?.error({ err: e, account: st.account }, 'pop3 update failed');
      release(st.maildrop, this.opts.logger);
      this.state = { kind: 'ended' };
      return { kind: 'close', response: err('Some deleted messages were not removed', 'SYS/TEMP') };
    }
    this.state = { kind: 'ended' };
    this.counters.deleted += deleted.length;
    const left = st.maildrop.messages.length - deleted.length;
    const text = left === 0 ? 'maildrop empty' : `${left} messages left`;
    return { kind: 'close', response: ok(`${this.config.hostname} POP3 server signing off (${text})`) };
  }

  // ---- acting on answers ----------------------------------------------------------------------

  /** Does what a handler answered: the one place where the responses to commands are written. */
  private act(answer: Answer): Promise<void> | undefined {
    // A handler that waited (a hash, the maildrop) may find the session ended meanwhile.
    if (this.closed) return undefined;
    switch (answer.kind) {
      case 'respond':
        this.respond(answer.response);
        return undefined;
      case 'challenge':
        this.mode = { kind: 'sasl', exchange: answer.exchange };
        this.respond(answer.response);
        return undefined;
      case 'close':
        this.respond(answer.response);
        this.close();
        return undefined;
      case 'stls':
        return this.startTls();
    }
  }

  /**
   * The one place an exception becomes a response: "-ERR [SYS/TEMP]" and a log line, never
   * internals on the wire.
   */
  private attempt(step: () => Answer | Promise<Answer>): Answer | Promise<Answer> {
    const failed = (e: unknown): Answer => {
      this.opts.logger?.error({ err: e }, 'pop3 command failed');
      return say(INTERNAL_ERROR);
    };
    try {
      const result = step();
      return result instanceof Promise ? result.catch(failed) : result;
    } catch (e) {
      return failed(e);
    }
  }

  private async startTls(): Promise<void> {
    this.respond(ok('Begin TLS negotiation'));
    this.flush();
    // CVE-2011-0411: commands pipelined after STLS came in plaintext and could have been injected
    // by a man in the middle; they must not be executed inside the TLS session. Drop them.
    this.dropInput();
    this.mode = { kind: 'tls-handshake' };
    let tls: TlsInfo;
    try {
      tls = await this.io.startTls();
    } catch (e) {
      this.opts.logger?.info({ err: e }, 'TLS handshake failed');
      this.close();
      return;
    }
    if (this.closed) return;
    // RFC 2595 4: the client must discard what it learned (and send CAPA again); so do we.
    this.tlsInfo = tls;
    this.state = { kind: 'authorization', user: undefined };
    this.mode = COMMAND;
  }

  // ---- responses and the connection -----------------------------------------------------------

  private respond(r: Pop3Response): void {
    if (this.closed) return;
    if (r.kind === 'err' && blamesClient(r)) {
      this.counters.errors += 1;
      if (this.counters.errors >= this.config.limits.maxErrors) {
        // Still one response per command: this one says the session ends.
        this.out.push(formatResponse(err(`${r.text}; too many errors, closing connection`, r.code)));
        this.close();
        return;
      }
    }
    this.out.push(formatResponse(r));
  }

  private closeForShutdown(): void {
    this.closeWith(err('Server shutting down, try again later', 'SYS/TEMP'));
  }

  private closeWith(r: Pop3Response): void {
    if (this.closed) return;
    this.out.push(formatResponse(r));
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.flush();
    this.mode = CLOSED;
    this.dropInput();
    this.io.close();
    // While a command runs it may still be using the maildrop; run() releases it after.
    if (!this.running) this.releaseMaildrop();
  }

  /** RFC 1939 6: a session that ends without QUIT does not enter UPDATE; nothing is deleted. */
  private releaseMaildrop(): void {
    const state = this.state;
    if (state.kind !== 'transaction') return;
    this.state = { kind: 'ended' };
    release(state.maildrop, this.opts.logger);
  }

  private dropInput(): void {
    this.input.clear({ resume: !this.closed });
    this.lines.reset();
  }

  private flush(): void {
    if (this.out.length === 0) return;
    const parts = this.out;
    this.out = [];
    if (parts.length === 1 && parts[0] !== undefined) this.io.write(parts[0]);
    else if (parts.every((p) => typeof p === 'string')) this.io.write(parts.join(''));
    else this.io.write(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
  }
}

/**
 * Whether an -ERR counts towards limits.maxErrors: everything the client did wrong, but not our
 * own trouble (SYS/TEMP, SYS/PERM) nor a maildrop another session holds (IN-USE), which a
 * well-behaved client meets too.
 */
export function blamesClient(r: Extract<Pop3Response, { kind: 'err' }>): boolean {
  return r.code === undefined || r.code === 'AUTH';
}

function say(response: Pop3Response): Answer {
  return { kind: 'respond', response };
}

function octets(live: ReadonlyArray<{ message: MaildropMessage }>): number {
  return live.reduce((sum, { message }) => sum + message.size, 0);
}

function release(maildrop: Maildrop, logger: Pop3Options['logger']): void {
  try {
    maildrop.release();
  } catch (e) {
    logger?.error({ err: e }, 'releasing a maildrop failed');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
