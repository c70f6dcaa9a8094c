// The address a mail program asks about (?emailaddress=, Autodiscover's <EMailAddress>), checked
// strictly before anything else is done with it: the RFC 5321 Mailbox grammar of our SMTP parser
// (dot-string local part, UTF-8 where RFC 6531 allows it), no quoted local part, no address
// literal and no source route, none of which a mail program's account can have.

import { normalizeDomain } from '../mail/address.js';
import { parsePathArgument } from '../smtp/path-parser.js';

export interface ClientAddress {
  /** The address as the client wrote it (the local part's case kept), with the domain normalized. */
  readonly address: string;
  /** The domain in lower-case A-labels, as the store keeps it. */
  readonly domain: string;
}

/** RFC 5321 4.5.3.1.3: a path is at most 256 octets, so an address at most 254. */
const MAX_ADDRESS_OCTETS = 254;

export function parseClientAddress(text: string): ClientAddress | undefined {
  if (text.length === 0 || Buffer.byteLength(text, 'utf8') > MAX_ADDRESS_OCTETS) return undefined;
  if (text.startsWith('@') || text.startsWith('"')) return undefined;
  const parsed = parsePathArgument(`<${text}>`, { allowNull: false, allowPostmaster: false });
  const mailbox = parsed?.mailbox;
  if (mailbox === undefined || parsed?.params !== '' || mailbox.domain.startsWith('[')) return undefined;
  const domain = normalizeDomain(mailbox.domain);
  if (domain === undefined) return undefined;
  return { address: `${mailbox.local}@${domain}`, domain };
}
