// Buffers with free space in front, for a header that is only known later. A message's body is
// copied once, out of the socket's chunks, when its DATA ends; the Received header that the spool
// needs in front of it is made later (it names the queue id). With room left before the body, the
// header is written there and the spooled message is a view of the same memory, instead of a
// second copy of the whole message (at 100 KiB, two allocations of 100 KiB per message, and the
// garbage collection they bring).
//
// The room is known only through this module, so nothing else can write into it, and it is
// given out once: a second prepend to the same body copies, as it must (the first one's header is
// there).

/** Bytes free in front of a body given out by withHeadroom and not yet prepended to. */
const roomOf = new WeakMap<Buffer, number>();

/** An uninitialized buffer of `size` bytes with `headroom` free bytes in front of it. */
export function withHeadroom(headroom: number, size: number): Buffer {
  const whole = Buffer.allocUnsafeSlow(headroom + size);
  const body = whole.subarray(headroom);
  roomOf.set(body, headroom);
  return body;
}

/** `prefix` followed by `body`: in the room in front of the body if it has enough, else a copy of both. */
export function prepend(prefix: Buffer, body: Buffer): Buffer {
  const room = roomOf.get(body);
  if (room === undefined || room < prefix.length) return Buffer.concat([prefix, body]);
  roomOf.delete(body);
  const out = Buffer.from(body.buffer, body.byteOffset - prefix.length, prefix.length + body.length);
  prefix.copy(out, 0);
  return out;
}
