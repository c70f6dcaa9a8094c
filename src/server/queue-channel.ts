// The channel between each session worker and the queue owner (src/server/workers.ts), so that
// an accepted message's body goes straight from the process that read it to the one that spools
// it, and the primary relays none of it. How it works:
//
//   - The queue owner listens on a Unix socket, data_dir/run/queue.sock. It creates data_dir/run
//     0700 as the service account, so only that account (and root) can connect: whoever can
//     connect could as well write the spool, which is why a frame's content is trusted. A socket
//     left by a killed queue owner is removed before the next one listens.
//   - A session worker connects on its first call, and again on the first call after the
//     connection dropped (the queue owner was restarted).
//   - Each frame is a 4-byte big-endian length and v8.serialize() of { id, call } one way and
//     { id, result } the other: the structured clone the IPC channel used, so a body stays a
//     Buffer. Frames written in one tick are corked into one write: when a group commit answers
//     100 sessions at once, that is one syscall, not 100.
//   - A call outstanding when its connection closes (the queue owner died, or is restarting and
//     refuses the connection) fails: the session answers 451 4.3.0 and the client keeps the
//     message and retries. Whatever the queue owner made durable is in the spool, which the next
//     queue owner recovers, so a message may arrive twice but is never lost.

import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import type { Logger } from 'pino';
import type { QueueCall, QueueResult } from './worker-protocol.js';

/** Under data_dir: the directory only the service account may enter, and the socket in it. */
export function queueChannelPath(dataDir: string): string {
  return join(dataDir, 'run', 'queue.sock');
}

/** sockaddr_un's sun_path on Linux holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 107;

interface CallFrame {
  readonly id: number;
  readonly call: QueueCall;
}

interface ResultFrame {
  readonly id: number;
  readonly result: QueueResult;
}

/** What a call gets when its connection closes before the answer: the session's 451 4.3.0. */
const CHANNEL_LOST: QueueResult = { ok: false, failed: undefined };

/** Writes one frame; the frames of one tick leave in one write (a writev) when the tick ends. */
function writeFrame(socket: net.Socket, value: CallFrame | ResultFrame): void {
  if (socket.destroyed) return;
  const body = serialize(value);
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  if (socket.writableCorked === 0) {
    socket.cork();
    process.nextTick(() => socket.uncork());
  }
  socket.write(head);
  socket.write(body);
}

/** Cuts a byte stream into frames; a frame may arrive in any number of chunks. */
export class FrameReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** The length of the frame being read, once its 4-byte prefix is in; -1 before. */
  private frameLength = -1;

  constructor(private readonly onFrame: (value: unknown) => void) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.frameLength < 0) {
        if (this.buffered < 4) return;
        this.frameLength = this.take(4).readUInt32BE(0);
      }
      if (this.buffered < this.frameLength) return;
      const frame = this.take(this.frameLength);
      this.frameLength = -1;
      this.onFrame(deserialize(frame));
    }
  }

  /** The next n buffered bytes; one copy, of everything buffered, only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length < n) {
      const all = Buffer.concat(this.chunks, this.buffered);
      this.chunks.length = 0;
      this.chunks.push(all);
      return this.take(n);
    }
    this.buffered -= n;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }
}

/** The queue owner's end: answers every call of every session worker's connection. */
export class QueueChannelServer {
  private readonly connections = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  /** `answer` never rejects: a failure is a QueueResult too. */
  static async listen(path: string, answer: (call: QueueCall) => Promise<QueueResult>, logger: Logger): Promise<QueueChannelServer> {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`data_dir is too long for the queue owner's socket ${path} (at most ${MAX_SOCKET_PATH_BYTES} bytes); choose a shorter data_dir`);
    }
    prepareSocketDirectory(path);
    const server = net.createServer();
    const channel = new QueueChannelServer(server, path);
    server.on('connection', (socket) => channel.serve(socket, answer, logger));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => logger.error({ err: err.message }, 'queue channel error'));
    return channel;
  }

  /** Stops listening (which removes the socket) and closes the connections left. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    return closed;
  }

  private serve(socket: net.Socket, answer: (call: QueueCall) => Promise<QueueResult>, logger: Logger): void {
    this.connections.add(socket);
    const reader = new FrameReader((frame) => {
      const { id, call } = frame as CallFrame;
      // An answer for a connection that closed meanwhile is dropped: its caller already failed.
      void answer(call).then((result) => writeFrame(socket, { id, result }));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, 'queue channel: unreadable frame; closing the connection');
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
  }
}

/**
 * data_dir/run, 0700 and the service account's (this process runs as it), without the socket
 * a killed queue owner left: listen() fails with EADDRINUSE on a path that exists.
 */
function prepareSocketDirectory(path: string): void {
  const dir = join(path, '..');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new Error(`${dir} is not a directory; remove it so that the queue owner can create its socket there`);
  if (process.getuid !== undefined && stat.uid !== process.getuid()) {
    throw new Error(`${dir} belongs to uid ${stat.uid}, not to the service account; remove it (the server creates it again)`);
  }
  // mkdir's mode is masked by the umask, and an existing directory keeps its own.
  chmodSync(dir, 0o700);
  rmSync(path, { force: true });
}

/** One connection to the queue owner and the calls waiting on it. */
interface Connection {
  readonly socket: net.Socket;
  readonly pending: Map<number, (result: QueueResult) => void>;
}

/** A session worker's end: each call waits for its answer or for its connection to close. */
export class QueueChannelClient {
  private connection: Connection | undefined;
  private nextId = 1;
  private closed = false;

  constructor(private readonly path: string) {}

  call(call: QueueCall): Promise<QueueResult> {
    if (this.closed) return Promise.resolve(CHANNEL_LOST);
    const connection = this.connection ?? this.connect();
    const id = this.nextId++;
    return new Promise((resolve) => {
      connection.pending.set(id, resolve);
      writeFrame(connection.socket, { id, call });
    });
  }

  /** Calls still waiting fail. */
  close(): void {
    this.closed = true;
    this.connection?.socket.destroy();
  }

  private connect(): Connection {
    const socket = net.createConnection(this.path);
    const connection: Connection = { socket, pending: new Map() };
    const reader = new FrameReader((frame) => {
      const { id, result } = frame as ResultFrame;
      const done = connection.pending.get(id);
      connection.pending.delete(id);
      done?.(result);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    // ENOENT or ECONNREFUSED while the queue owner restarts, EPIPE or ECONNRESET if it died:
    // 'close' follows, and fails the calls.
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.connection === connection) this.connection = undefined;
      const waiting = [...connection.pending.values()];
      connection.pending.clear();
      for (const done of waiting) done(CHANNEL_LOST);
    });
    this.connection = connection;
    return connection;
  }
}
