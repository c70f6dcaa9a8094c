// Mail loop detection (RFC 5321 6.3): every hop adds a Received header, so a message that has
// passed through too many hops is going round in circles between misconfigured servers. Refusing
// it at the end of DATA turns an endless loop into one bounce at the previous hop.

import { readHeaderFields } from '../mail/header-section.js';

/** Received header fields in the message's header section. */
export function countReceivedHeaders(message: Buffer): number {
  let count = 0;
  for (const field of readHeaderFields(message)) if (field.name.toLowerCase() === 'received') count++;
  return count;
}
