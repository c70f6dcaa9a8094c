// A TXT record's text as DNS carries it: RFC 1035 section 3.3.14 makes TXT RDATA one or more
// <character-string>s, each a length octet and at most 255 octets. Longer texts (an RSA DKIM
// key, a TLS-RPT record with several URIs) are split, and receivers join the strings again with
// nothing between them (RFC 6376 section 3.6.2.2, RFC 7208 section 3.3, RFC 8460 section 3).

/** One <character-string> holds at most 255 octets. */
export const MAX_TXT_STRING_OCTETS = 255;

/** Splits `text` into strings of at most 255 UTF-8 octets, never inside a character. */
export function splitTxtStrings(text: string): string[] {
  const strings: string[] = [];
  let current = '';
  let octets = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char, 'utf8');
    if (octets + size > MAX_TXT_STRING_OCTETS) {
      strings.push(current);
      current = '';
      octets = 0;
    }
    current += char;
    octets += size;
  }
  // An empty text is one empty string: TXT RDATA holds at least one.
  if (current !== '' || strings.length === 0) strings.push(current);
  return strings;
}
