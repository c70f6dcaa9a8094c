// The DNS TXT record that publishes a DKIM public key (RFC 6376 section 3.6.1), as an operator
// pastes it into a zone file.

import { createPublicKey } from 'node:crypto';
import { splitTxtStrings } from '../dns/txt-strings.js';
import type { DkimKey } from './dkim-key.js';

export interface DkimRecord {
  /** "<selector>._domainkey.<domain>" without the final dot. */
  readonly name: string;
  /** The record's character-strings; receivers concatenate them (RFC 6376 section 3.6.2.2). */
  readonly strings: readonly string[];
}

export function dkimRecord(key: DkimKey): DkimRecord {
  const text = `v=DKIM1; k=${key.algorithm}; p=${publicKeyData(key)}`;
  return { name: `${key.selector}._domainkey.${key.domain}`, strings: splitTxtStrings(text) };
}

/** The zone-file line: `postern._domainkey.example.test. IN TXT "v=DKIM1; k=ed25519; p=..."`. */
export function formatDkimRecord(record: DkimRecord): string {
  return `${record.name}. IN TXT ${record.strings.map((s) => `"${s}"`).join(' ')}`;
}

/**
 * The p= value. RSA: the DER SubjectPublicKeyInfo, as every DKIM verifier expects (RFC 6376
 * section 3.6.1). Ed25519: the bare 32-octet key, not an SPKI structure (RFC 8463 section 4.2).
 */
function publicKeyData(key: DkimKey): string {
  const spki = createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' });
  switch (key.algorithm) {
    case 'rsa':
      return spki.toString('base64');
    case 'ed25519':
      // An Ed25519 SPKI is a fixed 12-octet header followed by the key (RFC 8410 section 4).
      return spki.subarray(spki.length - 32).toString('base64');
  }
}
