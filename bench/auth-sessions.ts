// The AUTH row of `npm run bench`: whole submission sessions over implicit TLS (RFC 8314), the way
// a mail client or a web application sends one message: connect, full TLS handshake (no session
// resumption), EHLO, AUTH PLAIN with an initial response (RFC 4954 4, RFC 4616), one message, QUIT.
// `clients` sessions run side by side, each client starting its next session when one ends, for a
// fixed time: the row takes seconds whatever the rate.

import net from 'node:net';
import tls from 'node:tls';

export interface AuthSessionRun {
  readonly port: number;
  readonly clients: number;
  /** Clients start new sessions for this long; sessions under way then are finished and counted. */
  readonly durationMs: number;
  readonly user: string;
  readonly password: string;
  readonly recipient: string;
}

export interface AuthSessionResult {
  /** Sessions that ended with the message accepted. */
  readonly sessions: number;
  /** Sessions the server turned away with a 4xx reply (overloaded: try again later). */
  readonly tempFailed: number;
  readonly seconds: number;
}

/** A 4xx reply (RFC 5321 4.2.1: transient), which a client answers by trying again. */
class TransientFailure extends Error {}

/**
 * Runs the clients. A session the server refuses with a 4xx is counted and the client starts
 * its next one, as a mail client retries; anything else rejects the run (broken, not slow).
 */
export async function runAuthSessions(run: AuthSessionRun): Promise<AuthSessionResult> {
  let sessions = 0;
  let tempFailed = 0;
  const begin = process.hrtime.bigint();
  const deadline = performance.now() + run.durationMs;
  const client = async (): Promise<void> => {
    while (performance.now() < deadline) {
      try {
        await oneSession(run, sessions + tempFailed + 1);
        sessions += 1;
      } catch (err) {
        if (!(err instanceof TransientFailure)) throw err;
        tempFailed += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: run.clients }, client));
  return { sessions, tempFailed, seconds: Number(process.hrtime.bigint() - begin) / 1e9 };
}

/**
 * Resolves once `port` accepts connections. The server binds its listeners one after another, so
 * the MX port answering (what the start-up helper waits for) does not yet mean this one does.
 */
export async function waitUntilAccepting(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing accepts connections on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** 1 KiB of body in 16 lines, like the smtp-source rows (RFC 5321 4.5.3.1.6: lines under 1000). */
const BODY = `${'x'.repeat(62)}\r\n`.repeat(16);

async function oneSession(run: AuthSessionRun, n: number): Promise<void> {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ port: run.port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
  const replies = new ReplyReader(socket);
  try {
    const step = async (line: string | undefined, code: number): Promise<void> => {
      if (line !== undefined) socket.write(`${line}\r\n`);
      const reply = await replies.next();
      if (!reply.startsWith(String(code))) {
        const what = line === undefined ? 'greeting' : line.split(' ')[0];
        const failure = `session ${n}: ${what} -> ${reply.trim()}`;
        throw reply.startsWith('4') ? new TransientFailure(failure) : new Error(failure);
      }
    };
    const plain = Buffer.from(`\0${run.user}\0${run.password}`).toString('base64');
    await step(undefined, 220);
    await step('EHLO bench.client.test', 250);
    await step(`AUTH PLAIN ${plain}`, 235);
    await step(`MAIL FROM:<${run.user}>`, 250);
    await step(`RCPT TO:<${run.recipient}>`, 250);
    await step('DATA', 354);
    await step(`From: <${run.user}>\r\nTo: <${run.recipient}>\r\nSubject: bench ${n}\r\n\r\n${BODY}.`, 250);
    await step('QUIT', 221);
  } finally {
    socket.destroy();
  }
}

/** Complete replies, one at a time: a reply ends with its "ddd " line (RFC 5321 4.2.1). */
export class ReplyReader {
  private buffered = '';
  private waiter: (() => void) | undefined;
  private closed = false;

  constructor(socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined); // Shows up as 'close'.
  }

  async next(): Promise<string> {
    for (;;) {
      const end = /(?:^|\r\n)\d{3} [^\r\n]*\r\n/.exec(this.buffered);
      if (end) {
        const length = end.index + end[0].length;
        const reply = this.buffered.slice(0, length);
        this.buffered = this.buffered.slice(length);
        return reply;
      }
      if (this.closed) throw new Error(`connection closed (unparsed: ${JSON.stringify(this.buffered)})`);
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }
}
