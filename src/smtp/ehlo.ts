// The EHLO reply (RFC 5321 4.1.1.1): our name, then one extension per line. What is listed here is
// exactly what the session implements; params.ts refuses parameters of anything not listed.

import { reply, type Reply } from '../mail/reply.js';

export interface EhloOptions {
  readonly hostname: string;
  readonly maxMessageSize: number;
  /** Offer STARTTLS: configured, and TLS is not up yet (RFC 3207 4.2: not after the upgrade). */
  readonly offerStartTls: boolean;
  /** SASL mechanisms to list in the AUTH line (RFC 4954 3); none: no AUTH line at all. */
  readonly authMechanisms?: readonly string[];
}

/** No enhanced status code: RFC 2034 section 3 leaves it out of EHLO replies. */
export function ehloReply(options: EhloOptions): Reply {
  const extensions = [
    'PIPELINING', // RFC 2920
    `SIZE ${options.maxMessageSize}`, // RFC 1870
    '8BITMIME', // RFC 6152
    'ENHANCEDSTATUSCODES', // RFC 2034
    'SMTPUTF8', // RFC 6531
    'CHUNKING', // RFC 3030
    'DSN', // RFC 3461
  ];
  if (options.offerStartTls) extensions.push('STARTTLS'); // RFC 3207
  const mechanisms = options.authMechanisms ?? [];
  if (mechanisms.length > 0) extensions.push(`AUTH ${mechanisms.join(' ')}`); // RFC 4954
  return reply(250, undefined, options.hostname, ...extensions);
}

export function heloReply(hostname: string): Reply {
  return reply(250, undefined, hostname);
}
