// The server side of one SMTP connection (RFC 5321), as a state machine with no I/O of its own:
// the server feeds it bytes (receive) and it answers through SessionIo. Policy and the message sink
// answer its questions asynchronously; commands are still handled strictly one at a time, in order,
// and bytes that arrive meanwhile wait in a queue.
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
import { InputQueue } from './input-queue.js';
import { LineReader, type BadLineReason, type LineEvent } from './line-reader.js';
import { MessageBody } from './message-body.js';
import { parseMailParams, parseRcptParams } from './params.js';
import { hasNonAscii, parsePathArgument, type Mailbox } from './path-parser.js';
import { receivedProtocol } from './received-protocol.js';
import { SmtpError, formatReply, reply, toReply, type Reply } from '../mail/reply.js';
import type {
  AuthGuard,
  MessageSink,
  SessionConfig,
  SessionEvents,
  SessionInfo,
  SessionIo,
  SessionPolicy,
} from './session-host.js';
import { normalizeDomain } from '../mail/address.js';
import type { TlsInfo } from '../mail/tls-info.js';

export interface SessionOptions {
  config: SessionConfig;
  clientIp: string;
  clientPort: number;
  policy: SessionPolicy;
  /** Brute-force accounting for AUTH (policy/auth-throttle.ts). */
  authGuard: AuthGuard;
  sink: MessageSink;
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

/** What a command handler answers; undefined when it has answered (or closed) by itself. */
type Outcome = Reply | undefined;

const COMMAND: InputMode = { kind: 'command' };
const CLOSED: InputMode = { kind: 'closed' };

const OK = reply(250, '2.0.0', 'OK');
const SEND_HELLO_FIRST = reply(503, '5.5.1', 'Send EHLO or HELO first');
const SEND_MAIL_FIRST = reply(503, '5.5.1', 'Send MAIL first');
const SEND_RCPT_FIRST = reply(503, '5.5.1', 'Send RCPT first');
const SIZE_EXCEEDED = reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
const AUTH_REQUIRED = reply(530, '5.7.0', 'Authentication required');
const NEEDS_SMTPUTF8 = reply(553, '5.6.7', 'Non-ASCII address needs the SMTPUTF8 parameter');

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

  private started = false;
  private talkedEarly = false;
  private shuttingDown = false;
  /** Between the end of a message and its reply (while the sink stores it). */
  private finishing = false;
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
    const kind = this.mode.kind;
    return kind === 'data' || kind === 'bdat' || kind === 'skip' ? 'data' : 'command';
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

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    const hostname = this.config.hostname;
    if (this.talkedEarly) {
      // A client that does not wait for the greeting is a spam engine, not an MTA (RFC 5321 4.3.1).
      this.closeWith(reply(554, '5.5.0', `${hostname} Protocol error: client talked before the greeting`));
      return;
    }
    this.out.push(formatReply(reply(220, undefined, `${hostname} ESMTP Postern`)));
    this.flush();
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
      // handle() answers its own errors; this is a fault in the session or in SessionIo itself.
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
          if (read.event) {
            event =
              mode.kind === 'sasl'
                ? { kind: 'sasl-line', line: read.event, exchange: mode.exchange }
                : { kind: 'command-line', line: read.event };
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
        case 'tls-handshake':
        case 'closed':
          return undefined;
      }
      this.input.consume(end - start);
      if (event) return event;
    }
  }

  /** Acts on one event; a returned promise is awaited before the next. Never throws. */
  private handle(event: InputEvent): Promise<void> | undefined {
    try {
      const outcome = this.dispatch(event);
      if (outcome instanceof Promise) {
        return outcome.then(
          (r) => this.answer(r),
          (err: unknown) => this.fail(err),
        );
      }
      this.answer(outcome);
    } catch (err) {
      this.fail(err);
    }
    return undefined;
  }

  private dispatch(event: InputEvent): Outcome | Promise<Outcome> {
    switch (event.kind) {
      case 'command-line': {
        const line = event.line;
        if (line.kind === 'bad') return BAD_LINE[line.reason];
        const cmd = parseCommand(line.text);
        if (cmd.verb !== 'AUTH' && Buffer.byteLength(line.text) + 2 > this.config.limits.maxCommandLine) {
          return BAD_LINE['too-long'];
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

  private command(cmd: Command): Outcome | Promise<Outcome> {
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
        return OK;
      case 'NOOP':
        return OK;
      case 'QUIT':
        this.respond(reply(221, '2.0.0', `${hostname} closing connection`));
        this.close();
        return undefined;
      case 'VRFY':
        // RFC 5321 3.5.3 allows 252; saying which users exist would help address harvesters.
        return reply(252, '2.5.0', 'Cannot VRFY user, but will accept message and attempt delivery');
      case 'EXPN':
        return reply(502, '5.5.1', 'EXPN is not supported');
      case 'HELP':
        return reply(214, '2.0.0', 'Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH');
      case 'STARTTLS':
        return this.startTls();
      case 'AUTH':
        return this.auth(cmd.argument);
      case 'UNKNOWN':
        return reply(500, '5.5.2', 'Command not recognized');
      case 'INVALID':
        if (cmd.skip > 0) this.mode = { kind: 'skip', reader: new BdatReader(cmd.skip, undefined) };
        return cmd.reply;
    }
  }

  // ---- command handlers -----------------------------------------------------------------------

  private helo(verb: 'EHLO' | 'HELO', name: string): Reply {
    // RFC 5321 4.1.4: EHLO/HELO in mid-session resets the transaction, as RSET does.
    this.transaction = undefined;
    this.hello = { name, esmtp: verb === 'EHLO' };
    this.counters.helo = name;
    const hostname = this.config.hostname;
    if (verb === 'HELO') return heloReply(hostname);
    return ehloReply({
      hostname,
      maxMessageSize: this.config.limits.maxMessageSize,
      offerStartTls: this.config.starttls && this.tlsInfo === undefined,
      authMechanisms: this.authOffered() ? this.offeredMechanisms().map((m) => m.name) : [],
    });
  }

  private async mail(argument: string): Promise<Outcome> {
    if (!this.hello) return SEND_HELLO_FIRST;
    if (this.transaction) return reply(503, '5.5.1', 'Sender already given; send RSET to start over');
    if (this.config.requireAuth && this.authUser === undefined) return AUTH_REQUIRED;
    const maxMessages = this.config.limits.maxMessagesPerConnection;
    if (maxMessages > 0 && this.counters.messagesAccepted + this.counters.messagesRejected >= maxMessages) {
      const hostname = this.config.hostname;
      this.closeWith(reply(421, '4.7.0', `${hostname} Too many messages in one connection, closing connection`));
      return undefined;
    }
    const path = parsePathArgument(argument, { allowNull: true, allowPostmaster: false });
    if (!path) return reply(501, '5.1.7', 'Bad sender address syntax');
    this.refuseParamsAfterHelo(path.params);
    const params = parseMailParams(path.params);
    if (params.size !== undefined && params.size > this.config.limits.maxMessageSize) return SIZE_EXCEEDED;
    // RFC 6531 3.5: a UTF-8 address without SMTPUTF8 would be mangled by the next hop. Checked
    // as written: normalizing turns a U-label domain into ASCII.
    if (path.mailbox && isUtf8Mailbox(path.mailbox) && !params.smtputf8) return NEEDS_SMTPUTF8;
    const sender = path.mailbox ? addressOf(path.mailbox) : '';
    const refusal = await this.opts.policy.checkSender(this.info(), sender, params);
    if (refusal) return refusal;
    this.transaction = { sender, mailParams: params, recipients: [], chunks: undefined };
    return reply(250, '2.1.0', 'OK');
  }

  private async rcpt(argument: string): Promise<Outcome> {
    const transaction = this.transaction;
    if (!transaction) return this.hello ? SEND_MAIL_FIRST : SEND_HELLO_FIRST;
    if (transaction.chunks) return reply(503, '5.5.1', 'Recipients must come before the message data');
    const path = parsePathArgument(argument, { allowNull: false, allowPostmaster: true });
    if (!path) return reply(501, '5.1.3', 'Bad recipient address syntax');
    this.refuseParamsAfterHelo(path.params);
    const params = parseRcptParams(path.params);
    // RFC 5321 4.1.1.3: "<Postmaster>" without a domain names our own postmaster.
    if (path.mailbox && isUtf8Mailbox(path.mailbox) && !transaction.mailParams.smtputf8) return NEEDS_SMTPUTF8;
    const recipient = path.mailbox ? addressOf(path.mailbox) : 'postmaster';
    // RFC 5321 4.5.3.1.10: 452 tells the client to send the rest in another transaction.
    if (transaction.recipients.length >= this.config.limits.maxRecipients) {
      return reply(452, '4.5.3', 'Too many recipients');
    }
    const decision = await this.opts.policy.checkRecipient(this.info(), recipient, params, transaction.recipients.length);
    if (!decision.accept) return decision.reply;
    const forwards = decision.forwards ?? [];
    transaction.recipients.push({ address: decision.address, params, mailboxes: decision.mailboxes, ...(forwards.length > 0 ? { forwards } : {}) });
    return decision.reply ?? reply(250, '2.1.5', 'OK');
  }

  private data(): Outcome {
    const transaction = this.transaction;
    if (!transaction) return this.hello ? SEND_MAIL_FIRST : SEND_HELLO_FIRST;
    // RFC 3030 2: a message is sent either with DATA or with BDAT, never both.
    if (transaction.chunks) return reply(503, '5.5.1', 'DATA cannot follow BDAT in the same message');
    if (transaction.recipients.length === 0) return SEND_RCPT_FIRST;
    const body = this.newBody();
    this.mode = { kind: 'data', reader: new DotReader(body), body };
    return reply(354, undefined, 'End data with <CR><LF>.<CR><LF>');
  }

  private bdat(size: number, last: boolean): Outcome {
    const transaction = this.transaction;
    const refusal = !transaction
      ? this.hello
        ? SEND_MAIL_FIRST
        : SEND_HELLO_FIRST
      : transaction.recipients.length === 0
        ? SEND_RCPT_FIRST
        : undefined;
    if (refusal || !transaction) {
      // The client sends the octets anyway (RFC 3030 2); they must not be read as commands.
      if (size > 0) this.mode = { kind: 'skip', reader: new BdatReader(size, undefined) };
      return refusal;
    }
    transaction.chunks ??= this.newBody();
    this.mode = { kind: 'bdat', reader: new BdatReader(size, transaction.chunks), last };
    return undefined; // answered once the chunk has been read
  }

  private chunkEnd(size: number, last: boolean): Outcome | Promise<Outcome> {
    const chunks = this.transaction?.chunks;
    if (!chunks) throw new Error('BDAT chunk ended outside a transaction');
    if (!last) return reply(250, '2.0.0', `${size} octets received`);
    return this.finishMessage(chunks);
  }

  private async startTls(): Promise<Outcome> {
    if (this.tlsInfo) return reply(503, '5.5.1', 'TLS is already active');
    if (!this.config.starttls) return reply(502, '5.5.1', 'STARTTLS is not offered');
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
      return undefined;
    }
    if (this.closed) return undefined;
    // RFC 3207 4.2: forget everything learned before TLS; the client must send EHLO again.
    this.tlsInfo = tls;
    this.hello = undefined;
    this.transaction = undefined;
    this.authUser = undefined;
    this.mode = COMMAND;
    return undefined;
  }

  // ---- AUTH (auth-command.ts) ------------------------------------------------------------------

  private async auth(argument: string): Promise<Outcome> {
    const refusal = refuseAuth({
      offered: this.config.auth,
      tls: this.tlsInfo !== undefined,
      ehlo: this.hello?.esmtp === true,
      authenticated: this.authUser !== undefined,
      inTransaction: this.transaction !== undefined,
    });
    if (refusal) return refusal;
    const opening = openAuth(argument, this.offeredMechanisms());
    if (opening.kind === 'refused') return opening.reply;
    const locked = this.opts.authGuard.beforeAttempt(this.opts.clientIp);
    if (locked) return locked;
    const exchange = new AuthExchange(opening.mechanism, this.saslContext(), {
      guard: this.opts.authGuard,
      clientIp: this.opts.clientIp,
    });
    return this.saslTurn(exchange, await exchange.start(opening.initialResponse));
  }

  private async saslResponse(exchange: AuthExchange, line: LineEvent): Promise<Outcome> {
    // Back to commands unless the exchange continues, also when the mechanism throws (451).
    this.mode = COMMAND;
    return this.saslTurn(exchange, await exchange.respond(line));
  }

  private saslTurn(exchange: AuthExchange, turn: AuthTurn): Reply {
    switch (turn.kind) {
      case 'challenge':
        this.mode = { kind: 'sasl', exchange, mechanism: exchange.mechanism.name };
        return turn.reply;
      case 'authenticated':
        this.authUser = turn.account;
        return turn.reply;
      case 'ended':
        return turn.reply;
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

  // ---- the end of a message -------------------------------------------------------------------

  private async finishMessage(body: MessageBody): Promise<Outcome> {
    const transaction = this.transaction;
    const hello = this.hello;
    // RFC 5321 4.1.1.4: the end of the data ends the transaction, whatever the outcome.
    this.transaction = undefined;
    if (!transaction || !hello) throw new Error('message ended outside a transaction');
    const verdict = body.finish();
    let outcome: Reply;
    let queueId: QueueId | undefined;
    if (!verdict.ok) {
      outcome = verdict.reply;
    } else {
      this.finishing = true;
      this.flush(); // storing may take a while; the client should not wait for earlier replies
      const info = this.info();
      const envelope = this.envelope(transaction, hello);
      try {
        const refusal = await this.opts.policy.checkMessage(info, envelope, verdict.message);
        if (refusal) {
          outcome = refusal;
        } else {
          queueId = await this.opts.sink.accept(envelope, verdict.message);
          outcome = reply(250, '2.0.0', `OK: queued as ${queueId}`);
        }
      } catch (err) {
        if (!(err instanceof SmtpError)) this.opts.logger?.error({ err }, 'storing a message failed');
        outcome = toReply(err);
      }
      // Outside the try: the message is queued, so nothing here may turn the 250 into an error.
      if (queueId !== undefined) {
        await this.opts.policy.messageAccepted(info, envelope).catch((err: unknown) => {
          this.opts.logger?.error({ err, queue_id: queueId }, 'recording an accepted message failed');
        });
      }
      this.finishing = false;
    }
    if (queueId !== undefined) this.counters.messagesAccepted += 1;
    else this.counters.messagesRejected += 1;
    this.opts.events?.transaction?.({
      queueId,
      sender: transaction.sender,
      recipients: transaction.recipients.map((r) => r.address),
      size: verdict.size,
      outcome,
      authUser: this.authUser,
    });
    return outcome;
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

  private answer(outcome: Outcome): void {
    if (outcome) this.respond(outcome);
  }

  /** An exception from a handler: an SmtpError is its reply; anything else is 451 4.3.0 and a log line. */
  private fail(err: unknown): void {
    if (!(err instanceof SmtpError)) this.opts.logger?.error({ err }, 'smtp command failed');
    this.respond(toReply(err));
  }

  private respond(r: Reply): void {
    if (this.closed) return;
    this.out.push(formatReply(r));
    if (!blamesClient(r)) return;
    this.counters.errors += 1;
    if (this.counters.errors >= this.config.limits.maxErrors) {
      this.closeWith(reply(421, '4.7.0', `${this.config.hostname} Too many errors, closing connection`));
    }
  }

  private refuseParamsAfterHelo(params: string): void {
    // Parameters belong to service extensions, which only EHLO negotiates (RFC 5321 2.2.1).
    if (params !== '' && !this.hello?.esmtp) {
      throw new SmtpError(555, '5.5.4', 'Parameters are not allowed after HELO; use EHLO');
    }
  }

  private messageInProgress(): boolean {
    const kind = this.mode.kind;
    return kind === 'data' || kind === 'bdat' || this.finishing || this.transaction?.chunks !== undefined;
  }

  private closeForShutdown(): void {
    this.closeWith(reply(421, '4.3.2', `${this.config.hostname} Service shutting down, try again later`));
  }

  private closeWith(r: Reply): void {
    if (this.closed) return;
    this.out.push(formatReply(r));
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
    const data = this.out.length === 1 ? (this.out[0] as string) : this.out.join('');
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

function isUtf8Mailbox(mailbox: Mailbox): boolean {
  return hasNonAscii(mailbox.local) || hasNonAscii(mailbox.domain);
}

/** "local@domain" as policy sees it: the domain normalized (A-label, lower case), literals as given. */
function addressOf(mailbox: Mailbox): string {
  const domain = mailbox.domain.startsWith('[') ? mailbox.domain : (normalizeDomain(mailbox.domain) ?? mailbox.domain);
  return `${mailbox.local}@${domain}`;
}
