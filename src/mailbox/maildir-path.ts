// Where a mailbox's Maildir is: <mail root>/<domain>/<local part>/, for the delivery that writes
// it and the POP3 maildrop that reads it.

import { join } from 'node:path';
import { splitAddress } from '../mail/address.js';

/**
 * A path component made from network input. The local part is whatever the client sent, so it
 * must never name another directory: everything outside [a-z0-9._+-] is percent-encoded (so "/",
 * NUL, "%" and upper case cannot appear raw), and so is a leading dot ("." and "..", and hidden
 * files). Distinct inputs give distinct names.
 */
export function safePathComponent(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    const safe = /^[a-z0-9._+-]$/.test(c) && !(out === '' && c === '.');
    out += safe ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out === '') throw new Error('empty path component');
  return out;
}

/** The Maildir of a mailbox address: <mailRoot>/<domain>/<local>. */
export function maildirPath(mailRoot: string, mailbox: string): string {
  const parts = splitAddress(mailbox);
  if (!parts) throw new Error(`not a mailbox address: ${JSON.stringify(mailbox)}`);
  return join(mailRoot, safePathComponent(parts.domain.toLowerCase()), safePathComponent(parts.local));
}
