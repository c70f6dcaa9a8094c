// A mailbox's directory under the mail root: "<domain>/<local part>", each made safe as one path
// component. Postern's delivery and POP3 maildrop find the Maildir by it, and the store records it
// for Dovecot (migration 5), which must open the same directory: one definition for all of them.

import { splitAddress } from './address.js';

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

/** "<domain>/<local>" of a mailbox address, relative to the mail root. */
export function mailboxDirectory(mailbox: string): string {
  const parts = splitAddress(mailbox);
  if (!parts) throw new Error(`not a mailbox address: ${JSON.stringify(mailbox)}`);
  return `${safePathComponent(parts.domain.toLowerCase())}/${safePathComponent(parts.local)}`;
}
