// A writev may take fewer bytes than it was given (a full disk, a signal): what is left to write.
// Shared by the spool's segment writes and the Maildir copies, which both loop until it is empty.

/** The part of `buffers` after their first `written` bytes, without copying. */
export function unwritten(buffers: readonly Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = written;
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return rest;
}
