// An SMTP server for tests of our client: a peer with a script, written on raw node:net/tls so it
// shares no code with what it tests. It answers each RCPT as the script says ('250',
// '450 4.2.0 mailbox busy', '550 5.1.1 no such user'), can lack any extension (EHLO itself, so
// the client must fall back to HELO), offers STARTTLS or speaks implicit TLS with a self-signed
// certificate, checks AUTH PLAIN/LOGIN, can drop the connection in the middle of DATA, and
// records every envelope and message it accepts.
//
// With `lmtp` it is an LMTP server (RFC 2033) instead, on TCP or a Unix socket (startUnix): LHLO
// and no EHLO, and after the final dot one reply per accepted recipient, each as the script says
// (`dataReplies`), optionally dropping the connection after the first few of them.

import { chmodSync } from 'node:fs';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, TLSSocket, type SecureContext } from 'node:tls';
import { makeCertificate, type TestCertificate } from './test-certificate.js';

export interface SinkOptions {
  /** Host name in the greeting and certificate. */
  readonly name?: string;
  /** Reply to RCPT per address (lower case); others get `defaultRcpt`. */
  readonly recipients?: Readonly<Record<string, string>>;
  readonly defaultRcpt?: string;
  /** The greeting; e.g. '421 4.3.2 busy' sends the client elsewhere. */
  readonly greeting?: string;
  readonly mailReply?: string;
  /** Reply after the final dot. */
  readonly dataReply?: string;
  /** false: EHLO gets 500, so the client must say HELO (and gets no extensions). */
  readonly ehlo?: boolean;
  readonly pipelining?: boolean;
  readonly eightBitMime?: boolean;
  readonly smtputf8?: boolean;
  readonly dsn?: boolean;
  /** SIZE limit announced in EHLO (0: SIZE without a limit; undefined: no SIZE). */
  readonly size?: number;
  /** Offer STARTTLS. */
  readonly starttls?: boolean;
  /** TLS from the first byte (port 465 style). */
  readonly implicitTls?: boolean;
  /** A certificate to present (default: a self-signed one for `name`). */
  readonly certificate?: TestCertificate;
  /** Require AUTH (PLAIN or LOGIN) with these credentials before MAIL; offered only over TLS when TLS is on. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Close the connection after the first chunk of message data. */
  readonly dropMidData?: boolean;
  /** Answer STARTTLS with 220, then send garbage instead of a TLS handshake. */
  readonly brokenTls?: boolean;
  /** Send a reply in plain text right behind the 220 to STARTTLS (a CVE-2011-0411 style injection). */
  readonly injectAfterStartTls?: boolean;
  /** Speak LMTP (RFC 2033): LHLO instead of EHLO/HELO, a reply per recipient after the dot. */
  readonly lmtp?: boolean;
  /** LMTP: the reply after the dot per recipient (lower case); others get `dataReply`. Read at each dot. */
  readonly dataReplies?: Readonly<Record<string, string>>;
  /** LMTP: close the connection after this many of the replies that follow the dot. */
  readonly dropAfterReplies?: number;
  /** After this many messages on a connection, answer MAIL with 421 and close it (a server going away). */
  readonly closeAfterMessages?: number;
  /** Take DATA with 354 even when no recipient was accepted (RFC 2920 3.1 says refuse it). */
  readonly dataWithoutRecipients?: boolean;
}

export interface SinkMessage {
  readonly sender: string;
  /** MAIL FROM parameters as sent, e.g. ["SIZE=123", "BODY=8BITMIME"]. */
  readonly mailParams: readonly string[];
  readonly recipients: readonly string[];
  /** RCPT parameters per accepted recipient, as sent. */
  readonly rcptParams: readonly (readonly string[])[];
  /** The message with dot-stuffing undone, ending in CRLF. */
  readonly data: Buffer;
  /** Recipients the reply after the dot accepted, and that reply reached the client (LMTP: each its own). */
  readonly delivered: readonly string[];
  readonly tls: boolean;
  readonly authUser: string | undefined;
  /** Which TCP connection (1, 2, ...) carried it. */
  readonly connection: number;
  /** RCPT commands were already waiting when MAIL was read (the client pipelined, RFC 2920). */
  readonly pipelined: boolean;
  /** DATA was already waiting when MAIL was read: the whole envelope and DATA came in one batch. */
  readonly dataWithEnvelope: boolean;
  /** The name the client gave in EHLO/HELO, and which of the two it used. */
  readonly helo: string;
  readonly heloVerb: 'EHLO' | 'HELO' | 'LHLO';
  /** The client's IP address, as SPF checks it (RFC 7208 section 4.1); "" over a Unix socket. */
  readonly clientAddress: string;
}

export class SmtpSink {
  readonly messages: SinkMessage[] = [];
  /** Every command line received, over all connections (AUTH payloads included). */
  readonly commands: string[] = [];
  connections = 0;
  /** Most connections open at the same time. */
  peakConnections = 0;
  private open = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly opts: SinkOptions,
    private readonly context: SecureContext | undefined,
  ) {}

  static async start(opts: SinkOptions = {}, host = '127.0.0.1', port = 0): Promise<SmtpSink> {
    return SmtpSink.listen(opts, { host, port });
  }

  /** Listens on a Unix socket at `path`, reachable by any local user (the server may run as nobody). */
  static async startUnix(opts: SinkOptions, path: string): Promise<SmtpSink> {
    const sink = await SmtpSink.listen(opts, { path });
    chmodSync(path, 0o777);
    return sink;
  }

  private static async listen(opts: SinkOptions, where: { host: string; port: number } | { path: string }): Promise<SmtpSink> {
    const needsTls = opts.starttls === true || opts.implicitTls === true;
    const pems = needsTls ? (opts.certificate ?? (await makeCertificate(opts.name ?? 'sink.test'))) : undefined;
    const context = pems ? createSecureContext({ cert: pems.cert, key: pems.key }) : undefined;
    let sink: SmtpSink | undefined;
    const onSocket = (socket: Socket): void => sink!.accept(socket);
    const server = opts.implicitTls ? createTlsServer({ cert: pems!.cert, key: pems!.key }, onSocket) : createNetServer(onSocket);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(where, () => resolve());
    });
    const address = server.address();
    if (address === null) throw new Error('sink: not listening');
    sink = new SmtpSink(server, typeof address === 'string' ? 0 : address.port, opts, context);
    return sink;
  }

  /** Drops every open connection, as a server restart would; the listener stays. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.open++;
    this.peakConnections = Math.max(this.peakConnections, this.open);
    this.sockets.add(socket);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.open--;
    });
    new SinkSession(this, this.opts, this.context, this.connections, socket);
  }

  /** @internal */
  record(m: SinkMessage): void {
    this.messages.push(m);
  }
  /** @internal */
  track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
  }
}

type Mode = { kind: 'command' } | { kind: 'data'; chunks: Buffer[] } | { kind: 'login-user' } | { kind: 'login-password'; user: string };

class SinkSession {
  private input = Buffer.alloc(0);
  private mode: Mode = { kind: 'command' };
  private tls: boolean;
  private helo: { name: string; verb: 'EHLO' | 'HELO' | 'LHLO' } | undefined;
  private authUser: string | undefined;
  private tx: { sender: string; params: string[]; rcpts: string[]; rcptParams: string[][]; pipelined: boolean; dataWithEnvelope: boolean } | undefined;
  /** Messages taken on this connection (closeAfterMessages). */
  private taken = 0;

  constructor(
    private readonly sink: SmtpSink,
    private readonly opts: SinkOptions,
    private readonly context: SecureContext | undefined,
    private readonly connection: number,
    private socket: Socket,
  ) {
    this.tls = opts.implicitTls === true;
    this.bind(socket);
    this.send(opts.greeting ?? `220 ${opts.name ?? 'sink.test'} ${opts.lmtp ? 'LMTP' : 'ESMTP'} test sink`);
    if (opts.greeting && !opts.greeting.startsWith('220')) socket.end();
  }

  private bind(socket: Socket): void {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => undefined);
  }

  private send(line: string): void {
    if (!this.socket.destroyed) this.socket.write(`${line}\r\n`);
  }

  private receive(chunk: Buffer): void {
    this.input = Buffer.concat([this.input, chunk]);
    for (;;) {
      if (this.mode.kind === 'data') {
        if (!this.takeData()) return;
        continue;
      }
      const crlf = this.input.indexOf('\r\n');
      if (crlf === -1) return;
      const line = this.input.subarray(0, crlf).toString('utf8');
      this.input = this.input.subarray(crlf + 2);
      this.sink.commands.push(line);
      if (this.line(line) === 'stop') return;
    }
  }

  /** Consumes message data up to the final dot; false when more input is needed. */
  private takeData(): boolean {
    const mode = this.mode as { kind: 'data'; chunks: Buffer[] };
    if (this.opts.dropMidData && this.input.length > 0) {
      this.socket.destroy();
      return false;
    }
    const all = Buffer.concat([Buffer.from('\r\n'), ...mode.chunks, this.input]);
    const end = all.indexOf('\r\n.\r\n');
    if (end === -1) {
      mode.chunks.push(this.input);
      this.input = Buffer.alloc(0);
      return false;
    }
    const body = all.subarray(2, end + 2);
    this.input = all.subarray(end + 5);
    this.mode = { kind: 'command' };
    const tx = this.tx!;
    const { replies, sent } = this.finalReplies(tx.rcpts);
    this.sink.record({
      sender: tx.sender,
      mailParams: tx.params,
      recipients: tx.rcpts,
      rcptParams: tx.rcptParams,
      data: unstuff(body),
      delivered: this.opts.lmtp ? tx.rcpts.filter((_, i) => i < sent && replies[i]!.startsWith('2')) : replies[0]!.startsWith('2') ? tx.rcpts : [],
      tls: this.tls,
      authUser: this.authUser,
      connection: this.connection,
      pipelined: tx.pipelined,
      dataWithEnvelope: tx.dataWithEnvelope,
      helo: this.helo?.name ?? '',
      heloVerb: this.helo?.verb ?? 'HELO',
      clientAddress: this.socket.remoteAddress ?? '',
    });
    this.tx = undefined;
    this.taken++;
    for (const r of replies.slice(0, sent)) this.send(r);
    if (sent < replies.length) {
      this.socket.destroy();
      return false;
    }
    return true;
  }

  /** What follows the dot: one reply (SMTP), or one per recipient of which the first `sent` go out (LMTP). */
  private finalReplies(rcpts: readonly string[]): { replies: string[]; sent: number } {
    const fallback = expand(this.opts.dataReply ?? '250 2.0.0 Ok: queued');
    if (!this.opts.lmtp) return { replies: [fallback], sent: 1 };
    const replies = rcpts.map((address) => expand(this.opts.dataReplies?.[address.toLowerCase()] ?? fallback));
    return { replies, sent: Math.min(replies.length, this.opts.dropAfterReplies ?? Infinity) };
  }

  private line(line: string): 'stop' | void {
    switch (this.mode.kind) {
      case 'login-user':
        this.mode = { kind: 'login-password', user: Buffer.from(line, 'base64').toString('utf8') };
        this.send('334 UGFzc3dvcmQ6');
        return;
      case 'login-password':
        this.login(this.mode.user, Buffer.from(line, 'base64').toString('utf8'));
        this.mode = { kind: 'command' };
        return;
      case 'command':
      case 'data':
        break;
    }
    const [verb = '', ...rest] = line.split(' ');
    const arg = rest.join(' ');
    switch (verb.toUpperCase()) {
      case 'LHLO':
        if (!this.opts.lmtp) return this.send('500 5.5.1 command not recognized');
        this.helo = { name: arg, verb: 'LHLO' };
        this.tx = undefined;
        return this.ehloReply();
      case 'EHLO':
        if (this.opts.ehlo === false || this.opts.lmtp) return this.send('500 5.5.1 command not recognized');
        this.helo = { name: arg, verb: 'EHLO' };
        this.tx = undefined;
        return this.ehloReply();
      case 'HELO':
        if (this.opts.lmtp) return this.send('500 5.5.1 command not recognized');
        this.helo = { name: arg, verb: 'HELO' };
        this.tx = undefined;
        return this.send(`250 ${this.opts.name ?? 'sink.test'}`);
      case 'STARTTLS':
        return this.startTls();
      case 'AUTH':
        return this.auth(rest);
      case 'MAIL':
        return this.mail(arg);
      case 'RCPT':
        return this.rcpt(arg);
      case 'DATA':
        if (!this.tx) return this.send('503 5.5.1 MAIL first');
        if (this.tx.rcpts.length === 0 && !this.opts.dataWithoutRecipients) return this.send('554 5.5.1 no valid recipients');
        this.mode = { kind: 'data', chunks: [] };
        return this.send('354 go ahead');
      case 'RSET':
        this.tx = undefined;
        return this.send('250 2.0.0 Ok');
      case 'NOOP':
        return this.send('250 2.0.0 Ok');
      case 'QUIT':
        this.send('221 2.0.0 Bye');
        this.socket.end();
        return 'stop';
      default:
        return this.send('502 5.5.2 command not implemented');
    }
  }

  private ehloReply(): void {
    const o = this.opts;
    const ext: string[] = [o.name ?? 'sink.test'];
    if (o.pipelining !== false) ext.push('PIPELINING');
    if (o.size !== undefined) ext.push(o.size > 0 ? `SIZE ${o.size}` : 'SIZE');
    if (o.eightBitMime !== false) ext.push('8BITMIME');
    if (o.smtputf8 !== false) ext.push('SMTPUTF8');
    if (o.dsn) ext.push('DSN');
    if (o.starttls && !this.tls) ext.push('STARTTLS');
    if (o.auth && (this.tls || !o.starttls)) ext.push('AUTH PLAIN LOGIN');
    ext.push('ENHANCEDSTATUSCODES');
    ext.forEach((e, i) => this.send(`250${i === ext.length - 1 ? ' ' : '-'}${e}`));
  }

  private startTls(): 'stop' | void {
    if (!this.opts.starttls || this.tls) return this.send('502 5.5.1 STARTTLS not available');
    // One write, so that the injected line arrives in the same segment as the 220.
    this.send(`220 2.0.0 ready to start TLS${this.opts.injectAfterStartTls ? '\r\n250 injected in plain text' : ''}`);
    this.socket.removeAllListeners('data');
    if (this.opts.brokenTls) {
      // Answer the ClientHello, not before: data right after the 220 is a different test.
      this.socket.once('data', () => this.socket.end('this is not a TLS server hello\r\n'));
      return 'stop';
    }
    this.input = Buffer.alloc(0);
    const secure = new TLSSocket(this.socket, { isServer: true, secureContext: this.context! });
    this.sink.track(secure);
    this.bind(secure);
    this.tls = true;
    this.helo = undefined;
    this.tx = undefined;
    return 'stop';
  }

  private auth(args: string[]): void {
    const [mechanism = '', initial] = args;
    if (!this.opts.auth) return this.send('502 5.5.1 AUTH not available');
    switch (mechanism.toUpperCase()) {
      case 'PLAIN': {
        const [, user = '', password = ''] = Buffer.from(initial ?? '', 'base64').toString('utf8').split('\0');
        return this.login(user, password);
      }
      case 'LOGIN':
        this.mode = { kind: 'login-user' };
        return this.send('334 VXNlcm5hbWU6');
      default:
        return this.send('504 5.5.4 mechanism not supported');
    }
  }

  private login(user: string, password: string): void {
    const ok = user === this.opts.auth?.username && password === this.opts.auth.password;
    if (!ok) return this.send('535 5.7.8 authentication failed');
    this.authUser = user;
    this.send('235 2.7.0 authenticated');
  }

  private mail(arg: string): 'stop' | void {
    if (this.opts.auth && !this.authUser) return this.send('530 5.7.0 authentication required');
    const m = /^FROM:<([^>]*)>(.*)$/i.exec(arg);
    if (!m) return this.send('501 5.5.4 syntax: MAIL FROM:<address>');
    const params = m[2]!.trim().split(/\s+/).filter((p) => p !== '');
    const size = params.find((p) => p.toUpperCase().startsWith('SIZE='));
    if (size && this.opts.size && Number(size.slice(5)) > this.opts.size) return this.send('552 5.3.4 message too big');
    if (this.opts.closeAfterMessages !== undefined && this.taken >= this.opts.closeAfterMessages) {
      this.send('421 4.3.2 closing this connection');
      this.socket.end();
      return 'stop';
    }
    // As Postfix: a transaction left open (every RCPT or the DATA refused) ends with RSET first.
    if (this.tx) return this.send('503 5.5.1 nested MAIL command');
    if (this.opts.mailReply) return this.send(this.opts.mailReply);
    // Another complete command already buffered: it was sent without waiting for this reply.
    const rest = this.input.toString('latin1');
    this.tx = { sender: m[1]!, params, rcpts: [], rcptParams: [], pipelined: rest.includes('\r\n'), dataWithEnvelope: /(^|\r\n)DATA\r\n/i.test(rest) };
    this.send('250 2.1.0 Ok');
  }

  private rcpt(arg: string): void {
    if (!this.tx) return this.send('503 5.5.1 MAIL first');
    const m = /^TO:<([^>]*)>(.*)$/i.exec(arg);
    if (!m) return this.send('501 5.5.4 syntax: RCPT TO:<address>');
    const address = m[1]!;
    const reply = expand(this.opts.recipients?.[address.toLowerCase()] ?? this.opts.defaultRcpt ?? '250');
    if (reply.startsWith('2')) {
      this.tx.rcpts.push(address);
      this.tx.rcptParams.push(m[2]!.trim().split(/\s+/).filter((p) => p !== ''));
    }
    this.send(reply);
  }
}

/** A bare code from a script ('250', '452') as a whole reply. */
function expand(script: string): string {
  return /^\d{3}$/.test(script) ? `${script} ${script.startsWith('2') ? '2.1.5 Ok' : script[0] + '.0.0 refused'}` : script;
}

/** RFC 5321 4.5.2: a line that starts with "." lost its first dot on the sending side's stuffing. */
function unstuff(body: Buffer): Buffer {
  const lines = body.toString('latin1').split('\r\n');
  return Buffer.from(lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n'), 'latin1');
}
