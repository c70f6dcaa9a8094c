// Reading the originator fields (RFC 5322 3.6.2: From, Sender) of a message, for the sender
// identity check. Only the addr-specs matter: display names, comments and encoded words (RFC 2047)
// are skipped, never decoded. The parser is strict where leniency would let a forged address
// through: anything it cannot read with certainty is "invalid" and the message is refused, rather
// than guessed at (a mail client shows the From its own parser finds, not ours).

import { readHeaderFields, type HeaderField } from '../mail/header-section.js';

export type Originators =
  | {
      readonly kind: 'ok';
      /** Every mailbox of the From field, as "local@domain" with the local part unquoted. */
      readonly from: readonly string[];
      readonly sender: string | undefined;
    }
  | { readonly kind: 'invalid'; readonly why: string };

/** The From and Sender addresses of the message's header section. */
export function readOriginators(message: Buffer): Originators {
  const fields = readHeaderFields(message);
  const from = fields.filter((f) => f.name.toLowerCase() === 'from');
  const sender = fields.filter((f) => f.name.toLowerCase() === 'sender');
  // RFC 5322 3.6: From exactly once, Sender at most once. Two From fields are how a forged address
  // hides behind the real one: clients disagree on which one they show.
  if (from.length === 0) return { kind: 'invalid', why: 'no From header' };
  if (from.length > 1) return { kind: 'invalid', why: 'more than one From header' };
  if (sender.length > 1) return { kind: 'invalid', why: 'more than one Sender header' };

  const fromAddresses = parseAddressList((from[0] as HeaderField).value);
  if (fromAddresses === undefined) return { kind: 'invalid', why: 'unreadable From header' };
  if (fromAddresses.length === 0) return { kind: 'invalid', why: 'no address in the From header' };
  if (sender.length === 0) return { kind: 'ok', from: fromAddresses, sender: undefined };

  const senderAddresses = parseAddressList((sender[0] as HeaderField).value);
  if (senderAddresses === undefined || senderAddresses.length !== 1) {
    return { kind: 'invalid', why: 'unreadable Sender header' };
  }
  return { kind: 'ok', from: fromAddresses, sender: senderAddresses[0] };
}

// --- address-list (RFC 5322 3.4), including obs-addr-list and obs-angle-addr (4.4) ---

type Token =
  | { readonly kind: 'word'; readonly text: string; readonly quoted: boolean }
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'special'; readonly char: string };

const SPECIALS = '<>:;@,.';
/** Characters that end an atom: white space, specials, and the starts of other tokens. */
const ATOM_END = /[ \t\r\n<>:;@,."()[\]\\]/;
/** An encoded word (RFC 2047 2); read as one word even if a broken client left specials in it. */
const ENCODED_WORD = /=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=/y;

/** Addresses of an address-list, or undefined when it cannot be read with certainty. */
export function parseAddressList(value: string): string[] | undefined {
  const tokens = tokenize(value);
  if (tokens === undefined) return undefined;
  const p = new AddressParser(tokens);
  const out: string[] = [];
  while (!p.done()) {
    if (p.eat(',')) continue; // obs-addr-list: empty elements
    const addresses = p.address(true);
    if (addresses === undefined) return undefined;
    out.push(...addresses);
    if (!p.done() && !p.eat(',')) return undefined;
  }
  return out;
}

function tokenize(value: string): Token[] | undefined {
  const tokens: Token[] = [];
  let i = 0;
  while (i < value.length) {
    const c = value.charAt(i);
    // Only the white space of RFC 5322 (and the CRLF of unfolding): a no-break space is no
    // separator to a mail client either, so it stays inside the atom.
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '(') {
      // Comments nest (RFC 5322 3.2.2); counted, not recursed, so no input can exhaust the stack.
      const end = skipComment(value, i);
      if (end === undefined) return undefined;
      i = end;
    } else if (c === '"') {
      const q = readDelimited(value, i, '"');
      if (q === undefined) return undefined;
      tokens.push({ kind: 'word', text: q.text, quoted: true });
      i = q.end;
    } else if (c === '[') {
      const l = readDelimited(value, i, ']');
      if (l === undefined) return undefined;
      tokens.push({ kind: 'literal', text: `[${l.text}]` });
      i = l.end;
    } else if (SPECIALS.includes(c)) {
      tokens.push({ kind: 'special', char: c });
      i++;
    } else if (c === ')' || c === ']' || c === '\\') {
      return undefined;
    } else {
      ENCODED_WORD.lastIndex = i;
      let end = ENCODED_WORD.test(value) ? ENCODED_WORD.lastIndex : i;
      while (end < value.length && !ATOM_END.test(value.charAt(end))) end++;
      tokens.push({ kind: 'word', text: value.slice(i, end), quoted: false });
      i = end;
    }
  }
  return tokens;
}

/** The offset after the comment that starts at `start`, or undefined if it never ends. */
function skipComment(value: string, start: number): number | undefined {
  let depth = 0;
  for (let i = start; i < value.length; i++) {
    const c = value[i];
    if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return undefined;
}

/** A quoted string or domain literal: its content with quoted-pairs resolved (RFC 5322 3.2.1). */
function readDelimited(value: string, start: number, close: string): { text: string; end: number } | undefined {
  let text = '';
  for (let i = start + 1; i < value.length; i++) {
    const c = value.charAt(i);
    if (c === '\\') {
      if (i + 1 >= value.length) return undefined;
      text += value[++i];
    } else if (c === close) {
      return { text, end: i + 1 };
    } else {
      text += c;
    }
  }
  return undefined;
}

class AddressParser {
  private pos = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  done(): boolean {
    return this.pos >= this.tokens.length;
  }

  eat(char: string): boolean {
    const t = this.tokens[this.pos];
    if (t?.kind !== 'special' || t.char !== char) return false;
    this.pos++;
    return true;
  }

  private peekSpecial(char: string): boolean {
    const t = this.tokens[this.pos];
    return t?.kind === 'special' && t.char === char;
  }

  /** address = mailbox / group; a group is allowed only at the top level. */
  address(groupAllowed: boolean): string[] | undefined {
    const phrase = this.phrase();
    if (this.eat('<')) {
      const addr = this.angleAddr();
      return addr === undefined ? undefined : [addr];
    }
    if (phrase.length === 0) return undefined;
    if (this.eat(':')) return groupAllowed ? this.groupRest() : undefined;
    if (this.eat('@')) {
      const local = localPart(phrase);
      const domain = this.domain();
      return local === undefined || domain === undefined ? undefined : [`${local}@${domain}`];
    }
    return undefined; // a display name with no address ("undisclosed-recipients")
  }

  /** After "display-name:": mailboxes up to ";" (RFC 5322 3.4 group). */
  private groupRest(): string[] | undefined {
    const out: string[] = [];
    while (!this.eat(';')) {
      if (this.done()) return undefined;
      if (this.eat(',')) continue;
      const mailbox = this.address(false);
      if (mailbox === undefined) return undefined;
      out.push(...mailbox);
      if (!this.peekSpecial(';') && !this.eat(',')) return undefined;
    }
    return out;
  }

  /** After "<": [obs-route] addr-spec ">". */
  private angleAddr(): string | undefined {
    if (this.peekSpecial('@')) {
      // obs-route "@relay1,@relay2:" (RFC 5322 4.4): source routes carry no identity; skipped.
      while (!this.eat(':')) {
        if (this.done() || this.peekSpecial('>')) return undefined;
        this.pos++;
      }
    }
    const local = localPart(this.phrase());
    if (local === undefined || !this.eat('@')) return undefined;
    const domain = this.domain();
    if (domain === undefined || !this.eat('>')) return undefined;
    return `${local}@${domain}`;
  }

  /** Words and dots (obs-phrase allows "John Q. Public"). */
  private phrase(): Token[] {
    const out: Token[] = [];
    for (let t = this.tokens[this.pos]; t !== undefined; t = this.tokens[++this.pos]) {
      if (t.kind === 'word' || (t.kind === 'special' && t.char === '.')) out.push(t);
      else break;
    }
    return out;
  }

  /** dot-atom or domain-literal; a quoted string is no domain. */
  private domain(): string | undefined {
    const t = this.tokens[this.pos];
    if (t?.kind === 'literal') {
      this.pos++;
      return t.text;
    }
    const labels: string[] = [];
    for (;;) {
      const label = this.tokens[this.pos];
      if (label?.kind !== 'word' || label.quoted) return undefined;
      labels.push(label.text);
      this.pos++;
      if (!this.eat('.')) return labels.join('.');
    }
  }
}

/** word *("." word) (RFC 5322 3.4.1, obs-local-part 4.4); quoted words contribute their content. */
function localPart(tokens: readonly Token[]): string | undefined {
  if (tokens.length % 2 === 0) return undefined;
  let local = '';
  for (const [i, t] of tokens.entries()) {
    const wantWord = i % 2 === 0;
    if (wantWord && t.kind === 'word') local += t.text;
    else if (!wantWord && t.kind === 'special' && t.char === '.') local += '.';
    else return undefined;
  }
  return local;
}
