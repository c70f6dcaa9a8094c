// Mail loop detection (RFC 5321 6.3): every hop adds a Received header, so a message that has
// passed through too many hops is going round in circles between misconfigured servers. Refusing
// it at the end of DATA turns an endless loop into one bounce at the previous hop.

/** Received header fields in the message's header section. */
export function countReceivedHeaders(message: Buffer): number {
  const end = message.indexOf('\r\n\r\n');
  const header = message.toString('latin1', 0, end === -1 ? message.length : end + 2);
  let count = 0;
  // A field starts at the beginning of a line (continuation lines start with white space).
  for (const line of header.split('\r\n')) {
    if (/^received[ \t]*:/i.test(line)) count++;
  }
  return count;
}
