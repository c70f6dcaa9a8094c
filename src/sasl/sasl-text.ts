// Decoding what clients send inside SASL messages: UTF-8 (RFC 4422 section 3.4.1), strictly, so
// that an invalid byte sequence is a malformed message rather than U+FFFD in a user name.

import { normalizeAddress } from '../mail/address.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict base64 (RFC 4648 4, padding required): Buffer.from would silently skip junk and accept a
 * missing "=", so a response or a SCRAM proof could hide extra bytes or be read two ways.
 */
export function decodeBase64(text: string): Buffer | undefined {
  return BASE64.test(text) ? Buffer.from(text, 'base64') : undefined;
}

export function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Whether an authorization identity names the authenticated account itself. We support no
 * proxy authorization (RFC 4422 section 2): acting as another account is refused.
 */
export function sameAccountName(authzid: string, authcid: string): boolean {
  const normal = (name: string) => normalizeAddress(name) ?? name.normalize('NFC');
  return normal(authzid) === normal(authcid);
}
