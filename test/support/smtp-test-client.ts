// A minimal SMTP client for tests: raw sockets, reply-at-a-time reading, and STARTTLS.
// Deliberately dumb (no pipelining logic, no parsing beyond reply boundaries) so tests can say
// exactly which bytes go on the wire and when.

import net from 'node:net';
import tls from 'node:tls';

export class SmtpTestClient {
  private buffer = '';
  private waiters: (() => void)[] = [];
  private ended = false;

  private constructor(public socket: net.Socket) {
    this.listen(socket);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<SmtpTestClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => resolve(new SmtpTestClient(socket)));
      socket.once('error', reject);
    });
  }

  static connectTls(port: number, host = '127.0.0.1'): Promise<SmtpTestClient> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host, rejectUnauthorized: false }, () => resolve(new SmtpTestClient(socket)));
      socket.once('error', reject);
    });
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Everything received and not yet consumed by readReply. */
  get pending(): string {
    return this.buffer;
  }

  /** Resolves with the next complete reply (all its lines, CRLF-terminated), or '' at EOF. */
  async readReply(): Promise<string> {
    for (;;) {
      const end = replyEnd(this.buffer);
      if (end > 0) {
        const r = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end);
        return r;
      }
      if (this.ended) return '';
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.readReply();
  }

  /** Resolves once the server has closed the connection. */
  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Upgrades the connection after "220 Ready to start TLS". */
  async startTls(): Promise<tls.TLSSocket> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('end');
    plain.removeAllListeners('close');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
    return secure;
  }

  end(): void {
    this.socket.destroy();
  }

  private listen(socket: net.Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      this.buffer += text;
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Length of the first complete reply in `text` (through its "NNN " line), or 0. */
function replyEnd(text: string): number {
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\r\n', start);
    if (nl < 0) return 0;
    if (text.charAt(start + 3) !== '-') return nl + 2;
    start = nl + 2;
  }
}
