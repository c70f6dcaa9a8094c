// Parses one POP3 command line (RFC 1939 3, RFC 2449 3): a case-insensitive keyword of 3-4
// characters, then arguments separated by single spaces. The result says which command it is and
// carries its arguments already checked for form (numbers are numbers); whether a message number
// names a message, and whether the command is allowed now, is the session's question.

/**
 * Longest mechanism name for AUTH (RFC 2449 4 allows 40 characters an argument; SASL names have
 * at most 20). USER is held only to the line limit: account names are addresses, often longer.
 */
const MAX_ARGUMENT = 40;
/** Message numbers and line counts: digits only, no sign, no exponent (RFC 1939 3). */
const NUMBER = /^[0-9]{1,9}$/;

export type Command =
  | { readonly verb: 'CAPA' | 'STAT' | 'NOOP' | 'RSET' | 'QUIT' | 'STLS' }
  | { readonly verb: 'USER'; readonly name: string }
  | { readonly verb: 'PASS'; readonly password: string }
  /** No mechanism: the client asks which ones there are. */
  | { readonly verb: 'AUTH'; readonly mechanism: string | undefined; readonly initialResponse: string | undefined }
  | { readonly verb: 'LIST' | 'UIDL'; readonly message: number | undefined }
  | { readonly verb: 'RETR' | 'DELE'; readonly message: number }
  | { readonly verb: 'TOP'; readonly message: number; readonly lines: number }
  | { readonly verb: 'APOP' }
  /** A known command whose arguments are wrong. */
  | { readonly verb: 'invalid'; readonly syntax: string }
  | { readonly verb: 'unknown' };

const KEYWORDS = new Set(['CAPA', 'STAT', 'NOOP', 'RSET', 'QUIT', 'STLS', 'USER', 'AUTH', 'LIST', 'UIDL', 'RETR', 'DELE', 'TOP', 'APOP']);

export function parseCommand(line: string): Command {
  const space = line.indexOf(' ');
  const keyword = (space < 0 ? line : line.slice(0, space)).toUpperCase();
  const rest = space < 0 ? undefined : line.slice(space + 1);
  // RFC 1939 7: the password may contain spaces; the rest of the line is the argument.
  if (keyword === 'PASS') return rest === undefined || rest === '' ? invalid('PASS password') : { verb: 'PASS', password: rest };
  const args = rest === undefined ? [] : rest.split(' ');
  if (args.some((a) => a === '')) return KEYWORDS.has(keyword) ? invalid(syntaxOf(keyword)) : { verb: 'unknown' };
  const [first, second] = args;
  switch (keyword) {
    case 'CAPA':
    case 'STAT':
    case 'NOOP':
    case 'RSET':
    case 'QUIT':
    case 'STLS':
      return args.length === 0 ? { verb: keyword } : invalid(keyword);
    case 'USER':
      return args.length === 1 && first !== undefined ? { verb: 'USER', name: first } : invalid('USER name');
    case 'AUTH':
      // RFC 5034 4: the initial response may make the line longer than other commands.
      if (args.length > 2 || (first !== undefined && first.length > MAX_ARGUMENT)) return invalid(syntaxOf(keyword));
      return { verb: 'AUTH', mechanism: first?.toUpperCase(), initialResponse: second };
    case 'LIST':
    case 'UIDL': {
      if (args.length === 0) return { verb: keyword, message: undefined };
      const message = args.length === 1 ? number(first) : undefined;
      return message === undefined ? invalid(syntaxOf(keyword)) : { verb: keyword, message };
    }
    case 'RETR':
    case 'DELE': {
      const message = args.length === 1 ? number(first) : undefined;
      return message === undefined ? invalid(syntaxOf(keyword)) : { verb: keyword, message };
    }
    case 'TOP': {
      const message = number(first);
      const lines = number(second);
      return args.length !== 2 || message === undefined || lines === undefined ? invalid(syntaxOf(keyword)) : { verb: 'TOP', message, lines };
    }
    case 'APOP':
      return { verb: 'APOP' };
    default:
      return { verb: 'unknown' };
  }
}

function number(arg: string | undefined): number | undefined {
  return arg !== undefined && NUMBER.test(arg) ? Number(arg) : undefined;
}

function invalid(syntax: string): Command {
  return { verb: 'invalid', syntax };
}

function syntaxOf(keyword: string): string {
  switch (keyword) {
    case 'AUTH':
      return 'AUTH mechanism [initial-response]';
    case 'LIST':
    case 'UIDL':
      return `${keyword} [message]`;
    case 'RETR':
    case 'DELE':
      return `${keyword} message`;
    case 'TOP':
      return 'TOP message lines';
    default:
      return keyword;
  }
}
