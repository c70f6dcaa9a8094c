// SASLprep for SCRAM passwords (RFC 5802 section 2.2: SaltedPassword := Hi(Normalize(password), ...)).
// A pragmatic subset of RFC 4013, not the full stringprep tables: map the characters RFC 4013 2.1
// maps (non-ASCII spaces to SPACE, the "commonly mapped to nothing" set to nothing), normalize with
// NFKC (2.2), and refuse control, surrogate and private-use characters (2.3). The bidirectional
// check (2.4) and the unassigned-code-point check are left out: both sides of every SCRAM exchange
// Postern takes part in (the CLI deriving the stored keys, and clients typing ordinary passwords)
// agree on this subset, and what it skips never appears in passwords people type.

/** RFC 3454 B.1: "commonly mapped to nothing" (soft hyphen, zero-width joiners, variation selectors...). */
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;

/** RFC 3454 C.1.2: non-ASCII space characters, mapped to SPACE. */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu;

/** Controls (C.2), surrogates (C.5) and private use (C.3) are prohibited output. */
const PROHIBITED = /[\p{Cc}\p{Cs}\p{Co}]/u;

/** The prepared string, or undefined when it contains a prohibited character. */
export function saslprep(text: string): string | undefined {
  const prepared = text.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  return PROHIBITED.test(prepared) ? undefined : prepared;
}
