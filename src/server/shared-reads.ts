// Plain-text client connections (port 25, 587 until STARTTLS, 110 until STLS) read into one
// buffer that all of them share, instead of the fresh 64 KiB buffer Node allocates for every read
// of every socket, which the garbage collector then has to find and free. With 10 sessions
// sending 100 KiB messages that was a quarter of the server's CPU per message: the event loop's
// 884 -> 758 us, the GC threads' 250 -> 77 us (docs/benchmarks.md). An idle connection holds none.
//
// The price is a rule: the bytes handed to a reader are valid only until it returns. Whatever a
// session keeps for later (input not acted on yet, a line cut by the end of a read, a message's
// body) it copies: util/input-queue.ts, util/line-reader.ts, smtp/message-body.ts. The bytes are
// zeroed after every read, so that code which breaks the rule reads zeros at once and fails its
// tests, rather than reading some later read's bytes (another client's) now and then.
//
// Node offers this (the `onread` option of net.Socket) only when it creates the socket; a server
// socket is already made when it is accepted. So the accepted socket's handle is moved to a new
// Socket made with the option (`_handle` and `_server` are Node's own fields, stable since its
// early versions). If a Node version does without them, the socket is used as it is.
// TLS sockets are not affected: TLS reads go through OpenSSL's own buffers.

import net from 'node:net';

const READ_BUFFER_BYTES = 64 * 1024;
const shared = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);

export type Reader = (data: Buffer) => void;

/** The reader of each socket made here; undefined while nobody reads (a handshake is starting). */
const readers = new WeakMap<net.Socket, { reader: Reader | undefined }>();

interface NodeSocketFields {
  _handle?: object | null;
  _server?: unknown;
  server?: unknown;
}

/**
 * A socket over the same connection as `accepted` whose reads go to setReader's reader, through
 * the shared buffer; `accepted` must not be used any more. Paused, like an accepted socket with
 * pauseOnConnect: reading starts with resume().
 */
export function withSharedReads(accepted: net.Socket): net.Socket {
  const old = accepted as net.Socket & NodeSocketFields;
  const handle = old._handle;
  // Bytes already read into the old socket would be lost (a socket must be handed over before
  // its first read, which comes on a later turn of the event loop than its creation).
  if (handle === undefined || handle === null || accepted.destroyed || accepted.readableLength > 0) return accepted;
  const slot: { reader: Reader | undefined } = { reader: undefined };
  const options = {
    handle,
    pauseOnCreate: true,
    readable: true,
    writable: true,
    onread: {
      buffer: shared,
      callback: (length: number, buffer: Uint8Array): boolean => {
        try {
          slot.reader?.(Buffer.from(buffer.buffer, buffer.byteOffset, length));
        } finally {
          buffer.fill(0, 0, length);
        }
        return true;
      },
    },
  };
  const socket = new net.Socket(options as net.SocketConstructorOpts) as net.Socket & NodeSocketFields;
  // The server counts its connections down when this one closes, as it would for `accepted`.
  socket._server = old._server;
  socket.server = old.server;
  old._server = null;
  old.server = null;
  old._handle = null;
  readers.set(socket, slot);
  return socket;
}

/** True for a socket made by withSharedReads: its data comes to setReader's reader, not 'data'. */
export function hasSharedReads(socket: net.Socket): boolean {
  return readers.has(socket);
}

/** Who gets the socket's reads from now on; undefined drops them. */
export function setReader(socket: net.Socket, reader: Reader | undefined): void {
  const slot = readers.get(socket);
  if (slot) slot.reader = reader;
}
