// A deliberately dumb SMTP client over a raw socket, for scripted (and hostile) dialogues: it
// writes exactly the bytes it is given and parses replies (RFC 5321 4.2: "250-" continues a
// multi-line reply, "250 " ends it). Nothing is escaped or fixed up on the way out.

import { connect, type Socket } from 'node:net';

export interface SmtpReply {
  readonly code: number;
  /** The enhanced status code (RFC 3463) of the first line, if there is one. */
  readonly enhanced: string | undefined;
  readonly lines: readonly string[];
  /** All lines joined, for assertion messages. */
  readonly text: string;
}

export class SmtpClient {
  private buffered = '';
  private readonly replies: SmtpReply[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.receive(chunk));
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.ended = true;
        this.waiter?.();
        resolve();
      });
    });
    socket.on('error', () => undefined); // A reset shows up as 'close'; readReply reports it.
  }

  /** Connects; does not read the greeting (some tests must talk first). */
  static connect(port: number, host = '127.0.0.1'): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host);
      socket.once('connect', () => resolve(new SmtpClient(socket)));
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

  /** Writes raw bytes, exactly as given. */
  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
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
        this.buffered = this.buffered.slice(offset);
        return toReply(lines);
      }
    }
  }
}

function toReply(lines: string[]): SmtpReply {
  const code = Number(lines[lines.length - 1]!.slice(0, 3));
  const enhanced = /^\d{3}[- ](\d\.\d{1,3}\.\d{1,3})\b/.exec(lines[0]!)?.[1];
  return { code, enhanced, lines, text: lines.join('\n') };
}
