// A deliberately dumb SMTP client over a raw socket, for scripted (and hostile) dialogues: it
// writes exactly the bytes it is given and parses replies (RFC 5321 4.2: "250-" continues a
// multi-line reply, "250 " ends it). Nothing is escaped or fixed up on the way out.
// TLS, implicit (RFC 8314) or by STARTTLS (RFC 3207), trusts any certificate: test servers use
// self-signed ones, and the tests that care ask which certificate was served.

import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import type { Reply } from '../../src/mail/reply.js';

/**
 * A reply in the server's own shape (src/mail/reply.ts: code, enhanced code, the text of each
 * line without either), plus what only tests need of the wire.
 */
export interface SmtpReply extends Reply {
  /** All lines as they came, joined, for assertion messages. */
  readonly text: string;
  /** The reply exactly as it came, line ends included: for tests about the wire, not the meaning. */
  readonly raw: string;
}

export class SmtpClient {
  private buffered = '';
  private readonly replies: SmtpReply[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private resolveClosed!: () => void;
  /** Resolves when the connection closes, whichever end closed it, before or after STARTTLS. */
  readonly closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));

  private readonly onData = (chunk: string): void => this.receive(chunk);
  private readonly onClose = (): void => {
    this.ended = true;
    this.waiter?.();
    this.resolveClosed();
  };

  private constructor(private socket: Socket) {
    this.listen(socket);
  }

  /** Connects (from `localAddress` if given); does not read the greeting (some tests must talk first). */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
      socket.once('connect', () => resolve(new SmtpClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects with TLS from the first byte (submissions); does not read the greeting either. */
  static connectTls(port: number, host = '127.0.0.1'): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ port, host, rejectUnauthorized: false }, () => resolve(new SmtpClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects, expects the 220 greeting and says EHLO. */
  static async open(port: number, helo = 'client.remote.test'): Promise<SmtpClient> {
    const client = await SmtpClient.connect(port);
    await client.expect(220);
    await client.command(`EHLO ${helo}`, 250);
    return client;
  }

  /**
   * The TLS session, once there is one, for what only it can tell: the protocol, the peer's
   * certificate, keying material for channel binding.
   */
  get tlsSocket(): TLSSocket | undefined {
    return this.socket instanceof TLSSocket ? this.socket : undefined;
  }

  /**
   * Everything received and not yet read, whole replies and any partial one, exactly as it came.
   * Looked at right after STARTTLS, anything here came before the handshake: the answer to a
   * command injected behind STARTTLS (CVE-2011-0411).
   */
  get pending(): string {
    return this.replies.map((reply) => reply.raw).join('') + this.buffered;
  }

  /** Writes raw bytes, exactly as given. */
  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /**
   * Upgrades this same connection, after the server's 220 to STARTTLS. Unread plaintext is kept
   * in `pending`, not dropped with the old socket's listeners: a server that answered a command
   * pipelined behind STARTTLS must show in the test. `servername` sends SNI.
   */
  async startTls(options: { servername?: string } = {}): Promise<TLSSocket> {
    const plain = this.socket;
    plain.off('data', this.onData);
    plain.off('close', this.onClose);
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false, ...options });
    this.socket = secure;
    this.listen(secure);
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    return secure;
  }

  /** The next complete reply; rejects if the connection closes first or after `timeoutMs`. */
  async readReply(timeoutMs = 15_000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.ended) throw new Error(`connection closed while waiting for a reply (unparsed: ${JSON.stringify(this.buffered)})`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no reply within ${timeoutMs} ms (unparsed: ${JSON.stringify(this.buffered)})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.replies.shift()!;
  }

  /** Reads a reply and checks its code; returns it. */
  async expect(code: number): Promise<SmtpReply> {
    const reply = await this.readReply();
    if (reply.code !== code) throw new Error(`expected ${code}, got: ${reply.text}`);
    return reply;
  }

  /** Sends one command line (CRLF added) and returns the reply, checking its code if given. */
  async command(line: string, code?: number): Promise<SmtpReply> {
    this.send(`${line}\r\n`);
    return code === undefined ? this.readReply() : this.expect(code);
  }

  /**
   * One whole transaction; `data` is the message with CRLF line ends, already dot-stuffed.
   * Returns the reply to the final dot (or the first refusal).
   */
  async sendMail(from: string, to: readonly string[], data: string): Promise<SmtpReply> {
    const mail = await this.command(`MAIL FROM:<${from}>`);
    if (mail.code !== 250) return mail;
    for (const rcpt of to) {
      const reply = await this.command(`RCPT TO:<${rcpt}>`);
      if (reply.code !== 250) {
        await this.command('RSET');
        return reply;
      }
    }
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    this.send(`${data}${data.endsWith('\r\n') ? '' : '\r\n'}.\r\n`);
    return this.readReply();
  }

  /** QUIT politely and wait for the close. */
  async quit(): Promise<void> {
    if (!this.ended) {
      this.send('QUIT\r\n');
      await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2_000))]);
    }
    this.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private listen(socket: Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', this.onData);
    socket.once('close', this.onClose);
    socket.on('error', () => undefined); // A reset shows up as 'close'; readReply reports it.
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    let reply: SmtpReply | undefined;
    while ((reply = this.takeReply()) !== undefined) this.replies.push(reply);
    if (this.replies.length > 0) this.waiter?.();
  }

  /** Removes one complete reply (through its "ddd " line) from the buffer, if there is one. */
  private takeReply(): SmtpReply | undefined {
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const newline = this.buffered.indexOf('\n', offset);
      if (newline < 0) return undefined;
      const line = this.buffered.slice(offset, newline).replace(/\r$/, '');
      offset = newline + 1;
      lines.push(line);
      if (!/^\d{3}-/.test(line)) {
        const raw = this.buffered.slice(0, offset);
        this.buffered = this.buffered.slice(offset);
        return toReply(lines, raw);
      }
    }
  }
}

function toReply(lines: string[], raw: string): SmtpReply {
  const code = Number((lines.at(-1) ?? '').slice(0, 3));
  const enhanced = /^\d{3}[- ](\d\.\d{1,3}\.\d{1,3})\b/.exec(lines[0] ?? '')?.[1];
  const strip = (line: string): string => {
    const rest = line.slice(4);
    return enhanced !== undefined && rest.startsWith(enhanced) ? rest.slice(enhanced.length).trimStart() : rest;
  };
  return { code, enhanced, lines: lines.map(strip), text: lines.join('\n'), raw };
}
