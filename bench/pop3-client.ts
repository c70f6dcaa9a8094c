// The POP3 side of `npm run bench`: a minimal client over implicit TLS (RFC 8314), driven the
// same way against Postern and Dovecot. It reads responses as bytes and finds a multi-line
// response's end (CRLF "." CRLF, RFC 1939 3) without copying the body more than once, so the
// client is not what limits a RETR row.

import tls from 'node:tls';

export interface Pop3Account {
  readonly user: string;
  readonly password: string;
}

const TERMINATOR = Buffer.from('\r\n.\r\n');

/** One logged-in (or not yet) POP3 connection. */
export class BenchPop3Client {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined); // Shows up as 'close'.
  }

  /** Connects with a full handshake (no session resumption), reads the greeting. */
  static async connect(port: number): Promise<BenchPop3Client> {
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    const client = new BenchPop3Client(socket);
    await client.expectOk(undefined);
    return client;
  }

  async login(account: Pop3Account): Promise<void> {
    await this.expectOk(`USER ${account.user}`);
    await this.expectOk(`PASS ${account.password}`);
  }

  /** Sends a command (or none, for the greeting) and checks its one-line answer is +OK. */
  async expectOk(command: string | undefined): Promise<string> {
    if (command !== undefined) this.socket.write(`${command}\r\n`);
    const line = (await this.readUntil(Buffer.from('\r\n'), 0)).toString('latin1');
    if (!line.startsWith('+OK')) throw new Error(`${command?.split(' ')[0] ?? 'greeting'} -> ${line.trim()}`);
    return line;
  }

  /** A multi-line command: returns the response, status line included, terminator excluded. */
  async multiLine(command: string): Promise<Buffer> {
    this.socket.write(`${command}\r\n`);
    const first = await this.readUntil(Buffer.from('\r\n'), 0, true);
    if (!first.toString('latin1').startsWith('+OK')) throw new Error(`${command} -> ${first.toString('latin1').trim()}`);
    // The status line's CRLF is the terminator's first CRLF when the body is empty.
    return this.readUntil(TERMINATOR, first.length - 2);
  }

  async quit(): Promise<void> {
    await this.expectOk('QUIT');
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Waits until `marker` is buffered at or after `from` and returns everything before its end
   * (`peek`: without consuming). Searches only the new bytes (plus an overlap), not from the
   * start each time: a 1 MB RETR arrives in hundreds of chunks.
   */
  private async readUntil(marker: Buffer, from: number, peek = false): Promise<Buffer> {
    let searched = from;
    for (;;) {
      if (this.buffered - searched >= marker.length) {
        const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
        this.chunks = [all];
        const at = all.indexOf(marker, searched);
        if (at !== -1) {
          const end = at + marker.length;
          if (peek) return all.subarray(0, end);
          const rest = all.subarray(end);
          this.chunks = rest.length > 0 ? [rest] : [];
          this.buffered = rest.length;
          return all.subarray(0, at);
        }
        searched = Math.max(from, all.length - marker.length + 1);
      }
      if (this.closed) throw new Error('the server closed the connection');
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }
}

export interface LoginRun {
  readonly port: number;
  /** One account per client: a POP3 server locks a maildrop to one session (RFC 1939 8). */
  readonly accounts: readonly Pop3Account[];
  readonly durationMs: number;
}

/** Whole sessions (connect, TLS, USER, PASS, QUIT), each client starting the next when one ends, until durationMs. */
export async function runPop3Logins(run: LoginRun): Promise<{ logins: number; seconds: number }> {
  let logins = 0;
  const begin = process.hrtime.bigint();
  const deadline = performance.now() + run.durationMs;
  await Promise.all(
    run.accounts.map(async (account) => {
      // At least one session per client, however short the run: a warm-up logs every account in.
      do {
        const client = await BenchPop3Client.connect(run.port);
        try {
          await client.login(account);
          await client.quit();
        } finally {
          client.destroy();
        }
        logins += 1;
      } while (performance.now() < deadline);
    }),
  );
  return { logins, seconds: Number(process.hrtime.bigint() - begin) / 1e9 };
}

/** Seconds from sending UIDL to its last line, in a session already logged in; checks the count. */
export async function timeUidl(port: number, account: Pop3Account, expected: number): Promise<number> {
  const client = await BenchPop3Client.connect(port);
  try {
    await client.login(account);
    const begin = process.hrtime.bigint();
    const listing = await client.multiLine('UIDL');
    const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
    const lines = listing.toString('latin1').split('\r\n').length - 1;
    if (lines !== expected) throw new Error(`UIDL listed ${lines} messages, expected ${expected}`);
    await client.quit();
    return seconds;
  } finally {
    client.destroy();
  }
}

/** RETRs every message of the maildrop, one after another as a client downloads; octets per second. */
export async function measureRetr(port: number, account: Pop3Account, expected: number): Promise<{ bytes: number; seconds: number }> {
  const client = await BenchPop3Client.connect(port);
  try {
    await client.login(account);
    const stat = await client.expectOk('STAT');
    const count = Number(stat.split(' ')[1]);
    if (count !== expected) throw new Error(`STAT says ${count} messages, expected ${expected}`);
    let bytes = 0;
    const begin = process.hrtime.bigint();
    for (let n = 1; n <= count; n++) bytes += (await client.multiLine(`RETR ${n}`)).length;
    const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
    await client.quit();
    return { bytes, seconds };
  } finally {
    client.destroy();
  }
}
