// The server side of one SMTP connection (RFC 5321), as a state machine with no I/O of its own:
// the server feeds it bytes (receive) and it answers through SessionIo. Policy and the message sink
// answer its questions asynchronously; commands are still handled strictly one at a time, in order,
// and bytes that arrive meanwhile wait in a queue.
//
// Every command handler answers one way: it returns an Answer (a reply, a reply and the end of the
// connection, or a change of input mode) and act() carries it out. Only act() and the session's
// own events (the greeting, a timeout, shutdown, too many errors) put replies on the wire.
//
// Replies are collected and written in one batch when the queue holds no further complete command
// (RFC 2920 pipelining), and before anything that may take long (storing a message, TLS).

import type { Logger } from 'pino';
import type { SaslContext, SaslMechanism } from '../sasl/mechanism.js';
import { AuthExchange, openAuth, refuseAuth, SASL_MAX_LINE, type AuthTurn } from './auth-command.js';
import { BdatReader } from './bdat-reader.js';
import { parseCommand, type Command } from './command-parser.js';
import { DotReader } from './dot-reader.js';
import { ehloReply, heloReply } from './ehlo.js';
import type { Envelope, EnvelopeRecipient, MailParams, QueueId } from '../mail/envelope.js';
import { InputQueue } from '../util/input-queue.js';
import { LineReader, type BadLineReason, type LineEvent } from '../util/line-reader.js';
import { MessageBody } from './message-body.js';
import { parseMailParams, parseRcptParams } from './params.js';
import { hasNonAscii, parsePathArgument, type Mailbox } from './path-parser.js';
import { receivedProtocol } from './received-protocol.js';
import { SmtpError, formatReply, reply, toReply, type Reply } from '../mail/reply.js';
import type {
  AuthenticatedMessage,
  AuthGuard,
  MessageAuthenticator,
  ClientStanding,
  MessageSink,
  SessionConfig,
  SessionEvents,
  SessionInfo,
  SessionIo,
  SessionPolicy,
} from './session-host.js';
import { normalizeDomain } from '../mail/address.js';
import type { TlsInfo } from '../mail/tls-info.js';
import type { SenderAuthReport } from '../sender-auth/verdict.js';

export interface SessionOptions {
  config: SessionConfig;
  clientIp: string;
  clientPort: number;
  policy: SessionPolicy;
  /** Brute-force accounting for AUTH (policy/auth-throttle.ts). */
  authGuard: AuthGuard;
  sink: MessageSink;
  /** Sender authentication after DATA (the MX listener); without it, messages are not checked. */
  authenticator?: MessageAuthenticator | undefined;
  io: SessionIo;
  events?: SessionEvents;
  /** TLS already up at connect (implicit TLS listener, port 465). */
  tls?: TlsInfo;
  now?: () => number;
  /** Where unexpected errors are logged (the client only ever sees 451 4.3.0). */
  logger?: Logger;
}

export interface SessionStats {
  messagesAccepted: number;
  messagesRejected: number;
  errors: number;
  helo: string | undefined;
  tls: TlsInfo | undefined;
  authUser: string | undefined;
}

/** What the bytes from the client are, right now. */
type InputMode =
  | { readonly kind: 'command' }
  /** Lines that answer a "334" challenge of an AUTH exchange (RFC 4954 4), not commands. */
  | { readonly kind: 'sasl'; readonly exchange: AuthExchange; readonly mechanism: string }
  | { readonly kind: 'data'; readonly reader: DotReader; readonly body: MessageBody }
  | { readonly kind: 'bdat'; readonly reader: BdatReader; readonly last: boolean }
  /** The octets of a refused BDAT: read and dropped, so they are not taken for commands. */
  | { readonly kind: 'skip'; readonly reader: BdatReader }
  /** A complete message is with policy and the sink: nothing is read, and shutdown waits, until it is answered. */
  | { readonly kind: 'storing' }
  /** Between "220 Ready to start TLS" and the end of the handshake: plaintext is dropped. */
  | { readonly kind: 'tls-handshake' }
  | { readonly kind: 'closed' };

/** A unit of input, complete and ready to be acted on. */
type InputEvent =
  | { readonly kind: 'command-line'; readonly line: LineEvent }
  | { readonly kind: 'sasl-line'; readonly line: LineEvent; readonly exchange: AuthExchange }
  | { readonly kind: 'data-end'; readonly body: MessageBody }
  | { readonly kind: 'chunk-end'; readonly size: number; readonly last: boolean };

interface Hello {
  readonly name: string;
  /** EHLO rather than HELO: ESMTP parameters and the ESMTP protocol name. */
  readonly esmtp: boolean;
}

interface Transaction {
  readonly sender: string;
  readonly mailParams: MailParams;
  readonly recipients: EnvelopeRecipient[];
  /** Set by the first BDAT: the message comes in chunks from then on, and DATA is out of sequence. */
  chunks: MessageBody | undefined;
}

/** The modes a handler may switch the input to; the session enters the others itself. */
type ReadingMode = Extract<InputMode, { readonly kind: 'sasl' | 'data' | 'bdat' | 'skip' }>;

/** A message read to its end and found well-formed, on its way to policy and the sink. */
interface CompleteMessage {
  readonly transaction: Transaction;
  readonly hello: Hello;
  readonly data: Buffer;
  readonly size: number;
}

/** What a command handler answers. act() writes the reply and counts it; no handler writes. */
type Answer =
  | { readonly kind: 'reply'; readonly reply: Reply }
  /** The reply, if any, then what follows is read in `mode`; an accepted BDAT is answered later. */
  | { readonly kind: 'enter'; readonly mode: ReadingMode; readonly reply: Reply | undefined }
  /** The reply, then the end of the connection. */
  | { readonly kind: 'close'; readonly reply: Reply }
  /** "220 Ready to start TLS", then the handshake (RFC 3207 4). */
  | { readonly kind: 'starttls' }
  /** The replies before it go out, then the message is stored and answered. */
  | { readonly kind: 'store'; readonly message: CompleteMessage };

/** How a complete message ended: queued (the client gets 250), or refused. */
type Acceptance =
  | { readonly kind: 'queued'; readonly queueId: QueueId; readonly reply: Reply; readonly senderAuth?: SenderAuthReport | undefined }
  | { readonly kind: 'refused'; readonly reply: Reply; readonly senderAuth?: SenderAuthReport | undefined };

const COMMAND: InputMode = { kind: 'command' };
const UNCHECKED: AuthenticatedMessage = { kind: 'unchecked' };
const STORING: InputMode = { kind: 'storing' };
const CLOSED: InputMode = { kind: 'closed' };

const OK = reply(250, '2.0.0', 'OK');
const SEND_HELLO_FIRST = reply(503, '5.5.1', 'Send EHLO or HELO first');
const SEND_MAIL_FIRST = reply(503, '5.5.1', 'Send MAIL first');
const SEND_RCPT_FIRST = reply(503, '5.5.1', 'Send RCPT first');
const SIZE_EXCEEDED = reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
const AUTH_REQUIRED = reply(530, '5.7.0', 'Authentication required');
const NEEDS_SMTPUTF8 = reply(553, '5.6.7', 'Non-ASCII address needs the SMTPUTF8 parameter');
const PARAMS_NEED_EHLO = reply(555, '5.5.4', 'Parameters are not allowed after HELO; use EHLO');

const BAD_LINE: Record<BadLineReason, Reply> = {
  'bare-newline': reply(500, '5.5.2', 'Bare CR or LF in command; lines must end with CRLF'),
  nul: reply(500, '5.5.2', 'NUL character in command'),
  'too-long': reply(500, '5.5.2', 'Line too long'),
  'not-utf8': reply(500, '5.5.2', 'Command is not valid UTF-8'),
};

export class SmtpSession {
  private readonly config: SessionConfig;
  private readonly io: SessionIo;
  private readonly now: () => number;
  private readonly lines: LineReader;

  private mode: InputMode = COMMAND;
  private hello: Hello | undefined;
  private transaction: Transaction | undefined;
  private tlsInfo: TlsInfo | undefined;
  private authUser: string | undefined;
  private standing: ClientStanding | undefined;

  private started = false;
  private talkedEarly = false;
  private shuttingDown = false;
  private running = false;

  private readonly input: InputQueue;
  private out: string[] = [];

  private readonly counters: Omit<SessionStats, 'tls' | 'authUser'> = {
    messagesAccepted: 0,
    messagesRejected: 0,
    errors: 0,
    helo: undefined,
  };

  constructor(private readonly opts: SessionOptions) {
    this.config = opts.config;
    this.io = opts.io;
    this.now = opts.now ?? Date.now;
    this.input = new InputQueue(opts.io);
    // Room for AUTH with a long initial response (RFC 4954 4); other commands are held to the
    // configured limit once read (see command-line in dispatch).
    const { limits, auth } = opts.config;
    this.lines = new LineReader(auth === 'never' ? limits.maxCommandLine : Math.max(limits.maxCommandLine, SASL_MAX_LINE));
    this.tlsInfo = opts.tls;
  }

  get waitingFor(): 'command' | 'data' {
    switch (this.mode.kind) {
      case 'data':
      case 'bdat':
      case 'skip':
        return 'data';
      // Storing: the client waits for our reply, as after any command.
      case 'storing':
      case 'command':
      case 'sasl':
      case 'tls-handshake':
      case 'closed':
        return 'command';
    }
  }

  get inTransaction(): boolean {
    return this.transaction !== undefined;
  }

  get closed(): boolean {
    return this.mode.kind === 'closed';
  }

  /** True while a command or message is being acted on (the session is not waiting for input). */
  get busy(): boolean {
    return this.running;
  }

  get stats(): SessionStats {
    return { ...this.counters, tls: this.tlsInfo, authUser: this.authUser };
  }

  /** The client sent something before the greeting (see start()). */
  get talkedBeforeGreeting(): boolean {
    return this.talkedEarly;
  }

  /** The greeting; `standing` is what the connect-time screen learned of the client, if it ran. */
  start(standing?: ClientStanding): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.standing = standing;
    const hostname = this.config.hostname;
    if (this.talkedEarly) {
      // A client that does not wait for the greeting is a spam engine, not an MTA (RFC 5321 4.3.1).
      this.closeWith(reply(554, '5.5.1', `${hostname} Protocol error: talked before the greeting`));
      return;
    }
    this.send(reply(220, undefined, `${hostname} ESMTP Postern`));
    this.flush();
  }

  /**
   * Instead of the greeting: a 554 opening reply refuses the client (RFC 5321 3.1), given by the
   * connect-time screen. The connection is closed rather than held for its QUIT.
   */
  refuse(refusal: Reply): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.closeWith(refusal);
  }

  receive(chunk: Buffer): void {
    if (this.closed || chunk.length === 0) return;
    if (!this.started) {
      this.talkedEarly = true;
      return;
    }
    // RFC 3207 6: nothing sent before the TLS handshake may be acted on afterwards.
    if (this.mode.kind === 'tls-handshake') return;
    this.input.push(chunk);
    this.kick();
    // What the commands handled so far left unread outlives this call: the chunk may not.
    this.input.keep();
  }

  timeout(): void {
    if (this.closed) return;
    this.closeWith(reply(421, '4.4.2', `${this.config.hostname} Timeout exceeded, closing connection`));
  }

  shutdown(): void {
    if (this.closed) return;
    this.shuttingDown = true;
    // A message being received is finished and answered first; run() closes after that.
    if (!this.running && !this.messageInProgress()) this.closeForShutdown();
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
        if (pending) await pending;
        if (this.shuttingDown && !this.closed && !this.messageInProgress()) this.closeForShutdown();
      }
      this.flush();
      if (!this.closed) this.input.caughtUp();
    } catch (err) {
      // attempt() answers the handlers' errors; this is a fault in the session or in SessionIo.
      this.opts.logger?.error({ err }, 'smtp session failed');
      this.close();
    } finally {
      this.running = false; // synchronous with the decision to stop: no receive() can slip between
    }
  }

  /** Takes the next complete unit of input from the queue, or undefined if more bytes are needed. */
  private nextEvent(): InputEvent | undefined {
    for (;;) {
      const mode = this.mode;
      if ((mode.kind === 'bdat' || mode.kind === 'skip') && mode.reader.done) {
        this.mode = COMMAND;
        if (mode.kind === 'bdat') return { kind: 'chunk-end', size: mode.reader.size, last: mode.last };
        continue;
      }
      const next = this.input.peek();
      if (next === undefined) return undefined;
      const { chunk, offset: start } = next;
      let end: number;
      let event: InputEvent | undefined;
      switch (mode.kind) {
        case 'command':
        case 'sasl': {
          const read = this.lines.read(chunk, start);
          end = read.offset;
          if (read.event && mode.kind === 'sasl') {
            // Back to commands unless the answer continues the exchange, also when the mechanism
            // throws (451).
            this.mode = COMMAND;
            event = { kind: 'sasl-line', line: read.event, exchange: mode.exchange };
          } else if (read.event) {
            event = { kind: 'command-line', line: read.event };
          }
          break;
        }
        case 'data':
          end = mode.reader.feed(chunk, start);
          if (mode.reader.done) {
            this.mode = COMMAND;
            event = { kind: 'data-end', body: mode.body };
          }
          break;
        case 'bdat':
        case 'skip':
          end = mode.reader.feed(chunk, start);
          break;
        // Nothing is read while a message is stored or TLS is negotiated, nor after the end.
        case 'storing':
        case 'tls-handshake':
        case 'closed':
          return undefined;
      }
      this.input.consume(end - start);
      if (event) return event;
    }
  }

  /** Acts on one event; a returned promise is awaited before the next. */
  private handle(event: InputEvent): Promise<void> | undefined {
    const answer = this.attempt(() => this.dispatch(event), say, 'smtp command failed');
    return answer instanceof Promise ? answer.then((a) => this.act(a)) : this.act(answer);
  }

  private dispatch(event: InputEvent): Answer | Promise<Answer> {
    switch (event.kind) {
      case 'command-line': {
        const line = event.line;
        if (line.kind === 'bad') return say(BAD_LINE[line.reason]);
        const cmd = parseCommand(line.text);
        if (cmd.verb !== 'AUTH' && Buffer.byteLength(line.text) + 2 > this.config.limits.maxCommandLine) {
          return say(BAD_LINE['too-long']);
        }
        return this.command(cmd);
      }
      case 'sasl-line':
        return this.saslResponse(event.exchange, event.line);
      case 'data-end':
        return this.finishMessage(event.body);
      case 'chunk-end':
        return this.chunkEnd(event.size, event.last);
    }
  }

  private command(cmd: Command): Answer | Promise<Answer> {
    const hostname = this.config.hostname;
    switch (cmd.verb) {
      case 'EHLO':
      case 'HELO':
        return this.helo(cmd.verb, cmd.domain);
      case 'MAIL':
        return this.mail(cmd.argument);
      case 'RCPT':
        return this.rcpt(cmd.argument);
      case 'DATA':
        return this.data();
      case 'BDAT':
        return this.bdat(cmd.size, cmd.last);
      case 'RSET':
        this.transaction = undefined;
        return say(OK);
      case 'NOOP':
        return say(OK);
      case 'QUIT':
        return { kind: 'close', reply: reply(221, '2.0.0', `${hostname} closing connection`) };
      case 'VRFY':
        // RFC 5321 3.5.3 allows 252; saying which users exist would help address harvesters.
        return say(reply(252, '2.5.0', 'Cannot VRFY user, but will accept message and attempt delivery'));
      case 'EXPN':
        return say(reply(502, '5.5.1', 'EXPN is not supported'));
      case 'HELP':
        return say(reply(214, '2.0.0', 'Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH'));
      case 'STARTTLS':
        return this.starttls();
      case 'AUTH':
        return this.auth(cmd.argument);
      case 'UNKNOWN':
        return say(reply(500, '5.5.2', 'Command not recognized'));
      case 'INVALID':
        // `skip` is set for a BDAT whose size could be read: its octets follow anyway.
        return refuseChunk(cmd.skip, cmd.reply);
    }
  }

  // ---- command handlers -----------------------------------------------------------------------

  private helo(verb: 'EHLO' | 'HELO', name: string): Answer {
    // RFC 5321 4.1.4: EHLO/HELO in mid-session resets the transaction, as RSET does.
    this.transaction = undefined;
    this.hello = { name, esmtp: verb === 'EHLO' };
    this.counters.helo = name;
    const hostname = this.config.hostname;
    if (verb === 'HELO') return say(heloReply(hostname));
    return say(
      ehloReply({
        hostname,
        maxMessageSize: this.config.limits.maxMessageSize,
        offerStartTls: this.config.starttls && this.tlsInfo === undefined,
        authMechanisms: this.authOffered() ? this.offeredMechanisms().map((m) => m.name) : [],
      }),
    );
  }

  private async mail(argument: string): Promise<Answer> {
    if (!this.hello) return say(SEND_HELLO_FIRST);
    if (this.transaction) return say(reply(503, '5.5.1', 'Sender already given; send RSET to start over'));
    if (this.config.requireAuth && this.authUser === undefined) return say(AUTH_REQUIRED);
    const maxMessages = this.config.limits.maxMessagesPerConnection;
    if (maxMessages > 0 && this.counters.messagesAccepted + this.counters.messagesRejected >= maxMessages) {
      const hostname = this.config.hostname;
      return { kind: 'close', reply: reply(421, '4.7.0', `${hostname} Too many messages in one connection, closing connection`) };
    }
    const path = parsePathArgument(argument, { allowNull: true, allowPostmaster: false });
    if (!path) return say(reply(501, '5.1.7', 'Bad sender address syntax'));
    if (!this.paramsAllowed(path.params)) return say(PARAMS_NEED_EHLO);
    // A malformed parameter is an SmtpError (555 5.5.4) from params.ts, answered by attempt().
    const params = parseMailParams(path.params);
    if (params.size !== undefined && params.size > this.config.limits.maxMessageSize) return say(SIZE_EXCEEDED);
    // RFC 6531 3.5: a UTF-8 address without SMTPUTF8 would be mangled by the next hop. Checked
    // as written: normalizing turns a U-label domain into ASCII.
    if (path.mailbox && isUtf8Mailbox(path.mailbox) && !params.smtputf8) return say(NEEDS_SMTPUTF8);
    const sender = path.mailbox ? addressOf(path.mailbox) : '';
    const refusal = await this.opts.policy.checkSender(this.info(), sender, params);
    if (refusal) return say(refusal);
    this.transaction = { sender, mailParams: params, recipients: [], chunks: undefined };
    return say(reply(250, '2.1.0', 'OK'));
  }

  private async rcpt(argument: string): Promise<Answer> {
    const transaction = this.transaction;
    if (!transaction) return say(this.hello ? SEND_MAIL_FIRST : SEND_HELLO_FIRST);
    if (transaction.chunks) return say(reply(503, '5.5.1', 'Recipients must come before the message data'));
    const path = parsePathArgument(argument, { allowNull: false, allowPostmaster: true });
    if (!path) return say(reply(501, '5.1.3', 'Bad recipient address syntax'));
    if (!this.paramsAllowed(path.params)) return say(PARAMS_NEED_EHLO);
    // A malformed parameter is an SmtpError (555 or 501 5.5.4) from params.ts, answered by attempt().
    const params = parseRcptParams(path.params);
    // RFC 5321 4.1.1.3: "<Postmaster>" without a domain names our own postmaster.
    if (path.mailbox && isUtf8Mailbox(path.mailbox) && !transaction.mailParams.smtputf8) return say(NEEDS_SMTPUTF8);
    const recipient = path.mailbox ? addressOf(path.mailbox) : 'postmaster';
    // RFC 5321 4.5.3.1.10: 452 tells the client to send the rest in another transaction.
    if (transaction.recipients.length >= this.config.limits.maxRecipients) {
      return say(reply(452, '4.5.3', 'Too many recipients'));
    }
    const decision = await this.opts.policy.checkRecipient(this.info(), recipient, params, transaction.recipients.length);
    if (!decision.accept) return say(decision.reply);
    const forwards = decision.forwards ?? [];
    transaction.recipients.push({ address: decision.address, params, mailboxes: decision.mailboxes, ...(forwards.length > 0 ? { forwards } : {}) });
    return say(decision.reply ?? reply(250, '2.1.5', 'OK'));
  }

  private data(): Answer {
    const transaction = this.transaction;
    if (!transaction) return say(this.hello ? SEND_MAIL_FIRST : SEND_HELLO_FIRST);
    // RFC 3030 2: a message is sent either with DATA or with BDAT, never both.
    if (transaction.chunks) return say(reply(503, '5.5.1', 'DATA cannot follow BDAT in the same message'));
    if (transaction.recipients.length === 0) return say(SEND_RCPT_FIRST);
    const body = this.newBody();
    return {
      kind: 'enter',
      mode: { kind: 'data', reader: new DotReader(body), body },
      reply: reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'),
    };
  }

  private bdat(size: number, last: boolean): Answer {
    const transaction = this.transaction;
    if (!transaction) return refuseChunk(size, this.hello ? SEND_MAIL_FIRST : SEND_HELLO_FIRST);
    if (transaction.recipients.length === 0) return refuseChunk(size, SEND_RCPT_FIRST);
    transaction.chunks ??= this.newBody();
    // Answered once the chunk has been read (chunk-end).
    return { kind: 'enter', mode: { kind: 'bdat', reader: new BdatReader(size, transaction.chunks), last }, reply: undefined };
  }

  private chunkEnd(size: number, last: boolean): Answer {
    const chunks = this.transaction?.chunks;
    if (!chunks) throw new Error('BDAT chunk ended outside a transaction');
    if (!last) return say(reply(250, '2.0.0', `${size} octets received`));
    return this.finishMessage(chunks);
  }

  private starttls(): Answer {
    if (this.tlsInfo) return say(reply(503, '5.5.1', 'TLS is already active'));
    if (!this.config.starttls) return say(reply(502, '5.5.1', 'STARTTLS is not offered'));
    return { kind: 'starttls' };
  }

  // ---- AUTH (auth-command.ts) ------------------------------------------------------------------

  private async auth(argument: string): Promise<Answer> {
    const refusal = refuseAuth({
      offered: this.config.auth,
      tls: this.tlsInfo !== undefined,
      ehlo: this.hello?.esmtp === true,
      authenticated: this.authUser !== undefined,
      inTransaction: this.transaction !== undefined,
    });
    if (refusal) return say(refusal);
    const opening = openAuth(argument, this.offeredMechanisms());
    if (opening.kind === 'refused') return say(opening.reply);
    const locked = this.opts.authGuard.beforeAttempt(this.opts.clientIp);
    if (locked) return say(locked);
    const exchange = new AuthExchange(opening.mechanism, this.saslContext(), {
      guard: this.opts.authGuard,
      clientIp: this.opts.clientIp,
    });
    return this.saslTurn(exchange, await exchange.start(opening.initialResponse));
  }

  private async saslResponse(exchange: AuthExchange, line: LineEvent): Promise<Answer> {
    return this.saslTurn(exchange, await exchange.respond(line));
  }

  private saslTurn(exchange: AuthExchange, turn: AuthTurn): Answer {
    switch (turn.kind) {
      case 'challenge':
        return { kind: 'enter', mode: { kind: 'sasl', exchange, mechanism: exchange.mechanism.name }, reply: turn.reply };
      case 'authenticated':
        this.authUser = turn.account;
        return say(turn.reply);
      case 'ended':
        return say(turn.reply);
    }
  }

  private authOffered(): boolean {
    return this.config.auth === 'after-tls' && this.tlsInfo !== undefined;
  }

  private offeredMechanisms(): SaslMechanism[] {
    const ctx = this.saslContext();
    return this.config.mechanisms.filter((m) => m.available(ctx));
  }

  private saslContext(): SaslContext {
    const tls = this.tlsInfo;
    return { secure: tls !== undefined, channelBinding: tls?.channelBinding, hostname: this.config.hostname };
  }

  // ---- acting on answers ----------------------------------------------------------------------

  /** Does what a handler answered: the one place where the replies to commands are written. */
  private act(answer: Answer): Promise<void> | undefined {
    // A handler that waited (policy, SASL) may find the session timed out meanwhile.
    if (this.closed) return undefined;
    switch (answer.kind) {
      case 'reply':
        this.respond(answer.reply);
        return undefined;
      case 'enter':
        // The mode first, so that a reply which ends the session (max_errors) leaves it closed.
        this.mode = answer.mode;
        if (answer.reply) this.respond(answer.reply);
        return undefined;
      case 'close':
        this.respond(answer.reply);
        this.close();
        return undefined;
      case 'starttls':
        return this.startTls();
      case 'store':
        return this.store(answer.message);
    }
  }

  /**
   * The one place an exception becomes a reply (toReply): an SmtpError, from policy, the sink or
   * params.ts, is the reply it carries; anything else is 451 4.3.0 and a log line, never internals
   * on the wire. `refused` turns that reply into what the caller waits for.
   */
  private attempt<T>(step: () => T | Promise<T>, refused: (r: Reply) => T, doing: string): T | Promise<T> {
    const failed = (err: unknown): T => {
      if (!(err instanceof SmtpError)) this.opts.logger?.error({ err }, doing);
      return refused(toReply(err));
    };
    try {
      const result = step();
      return result instanceof Promise ? result.catch(failed) : result;
    } catch (err) {
      return failed(err);
    }
  }

  private async startTls(): Promise<void> {
    this.respond(reply(220, '2.0.0', 'Ready to start TLS'));
    this.flush();
    // CVE-2011-0411: commands pipelined after STARTTLS came in plaintext and could be injected by
    // a man in the middle; they must not be executed inside the TLS session. Drop them.
    this.dropInput();
    this.mode = { kind: 'tls-handshake' };
    let tls: TlsInfo;
    try {
      tls = await this.io.startTls();
    } catch (err) {
      this.opts.logger?.info({ err }, 'TLS handshake failed');
      this.close();
      return;
    }
    if (this.closed) return;
    // RFC 3207 4.2: forget everything learned before TLS; the client must send EHLO again.
    this.tlsInfo = tls;
    this.hello = undefined;
    this.transaction = undefined;
    this.authUser = undefined;
    this.mode = COMMAND;
  }

  // ---- the end of a message -------------------------------------------------------------------

  private finishMessage(body: MessageBody): Answer {
    const transaction = this.transaction;
    const hello = this.hello;
    // RFC 5321 4.1.1.4: the end of the data ends the transaction, whatever the outcome.
    this.transaction = undefined;
    if (!transaction || !hello) throw new Error('message ended outside a transaction');
    const verdict = body.finish();
    if (verdict.ok) return { kind: 'store', message: { transaction, hello, data: verdict.message, size: verdict.size } };
    const refused: Acceptance = { kind: 'refused', reply: verdict.reply };
    this.countMessage(refused);
    this.reportMessage(transaction, verdict.size, refused);
    return say(verdict.reply);
  }

  /** Checks and stores a complete message, then answers it; nothing more is read until then. */
  private async store(message: CompleteMessage): Promise<void> {
    this.mode = STORING;
    this.flush(); // storing may take a while; the client should not wait for earlier replies
    const info = this.info();
    const envelope = this.envelope(message.transaction, message.hello);
    const acceptance = await this.attempt(
      () => this.accept(info, envelope, message.data),
      (r): Acceptance => ({ kind: 'refused', reply: r }),
      'storing a message failed',
    );
    // Unless a timeout closed the session meanwhile.
    if (this.mode.kind === 'storing') this.mode = COMMAND;
    this.countMessage(acceptance);
    this.respond(acceptance.reply);
    // The client waits for this reply unless it pipelined more: it goes out before the
    // bookkeeping below, whose log line and rate count the client need not wait for.
    if (this.input.peek() === undefined) this.flush();
    // Outside attempt(): the message is queued, so nothing here may turn the 250 into an error.
    // Still before the next command is read, so that command sees this message counted.
    if (acceptance.kind === 'queued') {
      await this.opts.policy.messageAccepted(info, envelope).catch((err: unknown) => {
        this.opts.logger?.error({ err, queue_id: acceptance.queueId }, 'recording an accepted message failed');
      });
    }
    this.reportMessage(message.transaction, message.size, acceptance);
  }

  /**
   * Policy's last word on the message, sender authentication (which may refuse it, or add its
   * header and quarantine it), then the sink, which resolves once the message is durable.
   */
  private async accept(info: SessionInfo, envelope: Envelope, data: Buffer): Promise<Acceptance> {
    const refusal = await this.opts.policy.checkMessage(info, envelope, data);
    if (refusal) return { kind: 'refused', reply: refusal };
    const checked = (await this.opts.authenticator?.authenticate(info, envelope, data)) ?? UNCHECKED;
    if (checked.kind === 'refuse') return { kind: 'refused', reply: checked.reply, senderAuth: checked.report };
    const stored = checked.kind === 'accept' ? checked : { envelope, message: data, report: undefined };
    const queueId = await this.opts.sink.accept(stored.envelope, stored.message);
    return { kind: 'queued', queueId, reply: reply(250, '2.0.0', `OK: queued as ${queueId}`), senderAuth: stored.report };
  }

  /** Counts the message, accepted or not, before its reply (which may end the session). */
  private countMessage(acceptance: Acceptance): void {
    if (acceptance.kind === 'queued') this.counters.messagesAccepted += 1;
    else this.counters.messagesRejected += 1;
  }

  /** Reports the message for the log, whatever became of it. */
  private reportMessage(transaction: Transaction, size: number, acceptance: Acceptance): void {
    const queueId = acceptance.kind === 'queued' ? acceptance.queueId : undefined;
    this.opts.events?.transaction?.({
      queueId,
      sender: transaction.sender,
      recipients: transaction.recipients.map((r) => r.address),
      size,
      outcome: acceptance.reply,
      authUser: this.authUser,
      ...(acceptance.senderAuth ? { senderAuth: acceptance.senderAuth } : {}),
    });
  }

  private envelope(transaction: Transaction, hello: Hello): Envelope {
    const tls = this.tlsInfo;
    return {
      sender: transaction.sender,
      mailParams: transaction.mailParams,
      recipients: transaction.recipients,
      arrival: {
        clientIp: this.opts.clientIp,
        clientPort: this.opts.clientPort,
        helo: hello.name,
        protocol: receivedProtocol({
          esmtp: hello.esmtp,
          tls: tls !== undefined,
          authenticated: this.authUser !== undefined,
          smtputf8: transaction.mailParams.smtputf8 === true,
        }),
        listener: this.config.listener,
        tls: tls ? { version: tls.version, cipher: tls.cipher } : undefined,
        authUser: this.authUser,
        receivedAt: this.now(),
      },
    };
  }

  private newBody(): MessageBody {
    const { maxMessageSize, maxTextLine } = this.config.limits;
    return new MessageBody({ maxMessageSize, maxTextLine, bareNewline: this.config.bareNewline });
  }

  // ---- replies and the connection -------------------------------------------------------------

  /** Queues a reply for the next flush, and tells the events (the server counts replies). */
  private send(r: Reply): void {
    this.out.push(formatReply(r));
    this.opts.events?.reply?.(r);
  }

  private respond(r: Reply): void {
    if (this.closed) return;
    this.send(r);
    if (!blamesClient(r)) return;
    this.counters.errors += 1;
    if (this.counters.errors >= this.config.limits.maxErrors) {
      this.closeWith(reply(421, '4.7.0', `${this.config.hostname} Too many errors, closing connection`));
    }
  }

  /** Parameters belong to service extensions, which only EHLO negotiates (RFC 5321 2.2.1). */
  private paramsAllowed(params: string): boolean {
    return params === '' || this.hello?.esmtp === true;
  }

  /** A message begun and not yet answered: shutdown waits for its reply. */
  private messageInProgress(): boolean {
    switch (this.mode.kind) {
      case 'data':
      case 'bdat':
      case 'storing':
        return true;
      case 'command':
      case 'sasl':
      case 'skip':
      case 'tls-handshake':
      case 'closed':
        // Between BDAT chunks the message is still coming.
        return this.transaction?.chunks !== undefined;
    }
  }

  private closeForShutdown(): void {
    this.closeWith(reply(421, '4.3.2', `${this.config.hostname} Service shutting down, try again later`));
  }

  private closeWith(r: Reply): void {
    if (this.closed) return;
    this.send(r);
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.flush();
    this.mode = CLOSED;
    this.dropInput();
    this.io.close();
  }

  private dropInput(): void {
    this.input.clear({ resume: !this.closed });
    this.lines.reset();
  }

  private flush(): void {
    if (this.out.length === 0) return;
    const data = this.out.length === 1 ? (this.out[0] ?? '') : this.out.join('');
    this.out = [];
    this.io.write(data);
  }

  private info(): SessionInfo {
    return {
      clientIp: this.opts.clientIp,
      clientPort: this.opts.clientPort,
      listener: this.config.listener,
      helo: this.hello?.name,
      tls: this.tlsInfo,
      authUser: this.authUser,
      sender: this.transaction?.sender,
      dnsAllowlisted: this.standing?.dnsAllowlisted ?? false,
    };
  }
}

/**
 * Whether a reply counts towards limits.max_errors: only permanent refusals of what the client
 * did wrong, so that a client which misbehaves is cut off while one that is merely told to wait
 * keeps its connection and its transaction. By RFC 3463 class:
 * - 4xx never counts. 452 4.5.3 is flow control (RFC 5321 4.5.3.1.10: send the other recipients
 *   in a later transaction), and 450 4.7.1 (a rate limit), 451 4.3.0 (our own fault) and
 *   452 4.3.1 (a full spool) are not the client's doing either.
 * - 5.5.x (syntax, unknown commands, bad sequence), 5.1.x (unknown users, bad addresses) and
 *   5.7.x (relay attempts, failed AUTH, a sender not the account's own) count; so does a 5xx
 *   without an enhanced code (EHLO/HELO errors, which carry none).
 * - 5.2.x (mailbox), 5.3.x (system, e.g. a message over SIZE), 5.4.x (routing, e.g. a mail loop)
 *   and 5.6.x (content, e.g. a bare LF) judge the message, not the client's behaviour.
 */
export function blamesClient(r: Reply): boolean {
  if (r.code < 500) return false;
  const subject = r.enhanced?.split('.')[1];
  return subject === undefined || subject === '5' || subject === '1' || subject === '7';
}

function say(r: Reply): Answer {
  return { kind: 'reply', reply: r };
}

/** The client sends the octets of a refused BDAT anyway (RFC 3030 2); they must not be read as commands. */
function refuseChunk(size: number, refusal: Reply): Answer {
  if (size === 0) return say(refusal);
  return { kind: 'enter', mode: { kind: 'skip', reader: new BdatReader(size, undefined) }, reply: refusal };
}

function isUtf8Mailbox(mailbox: Mailbox): boolean {
  return hasNonAscii(mailbox.local) || hasNonAscii(mailbox.domain);
}

/** "local@domain" as policy sees it: the domain normalized (A-label, lower case), literals as given. */
function addressOf(mailbox: Mailbox): string {
  const domain = mailbox.domain.startsWith('[') ? mailbox.domain : (normalizeDomain(mailbox.domain) ?? mailbox.domain);
  return `${mailbox.local}@${domain}`;
}
