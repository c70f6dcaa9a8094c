// Turns a command line into a Command: the verb (case-insensitive, RFC 5321 2.4) and the shape of
// its argument. Paths and parameters are parsed by the handlers (path-parser.ts, params.ts), which
// know which reply codes fit; what is wrong with the shape of the line is caught here.

import { reply, type Reply } from '../mail/reply.js';

export type Command =
  | { readonly verb: 'EHLO' | 'HELO'; readonly domain: string }
  /** `argument` is what follows "FROM:" / "TO:": "<path> [params]". */
  | { readonly verb: 'MAIL' | 'RCPT'; readonly argument: string }
  | { readonly verb: 'DATA' | 'RSET' | 'QUIT' | 'STARTTLS' | 'EXPN' }
  | { readonly verb: 'BDAT'; readonly size: number; readonly last: boolean }
  | { readonly verb: 'NOOP' | 'HELP' | 'VRFY'; readonly argument: string }
  /** RFC 4954 4: "AUTH" SP mechanism [SP initial-response]; `argument` is what follows the verb. */
  | { readonly verb: 'AUTH'; readonly argument: string }
  | { readonly verb: 'UNKNOWN' }
  /**
   * A known verb with a malformed argument. `skip`: a BDAT whose size could be read is followed by
   * that many octets whatever we answer (RFC 3030 section 2), and they must not be read as commands.
   */
  | { readonly verb: 'INVALID'; readonly reply: Reply; readonly skip: number };

/** RFC 3030 chunk-size = 1*DIGIT; more digits than a safe integer holds cannot be honoured. */
const CHUNK_SIZE = /^\d{1,15}$/;

function invalid(usage: string, skip = 0): Command {
  return { verb: 'INVALID', reply: reply(501, '5.5.4', `Syntax: ${usage}`), skip };
}

export function parseCommand(line: string): Command {
  const space = line.indexOf(' ');
  const word = (space === -1 ? line : line.slice(0, space)).toUpperCase();
  const argument = space === -1 ? '' : line.slice(space + 1);
  switch (word) {
    case 'EHLO':
    case 'HELO': {
      const domain = argument.trim();
      return domain === '' ? invalid(`${word} <hostname>`) : { verb: word, domain };
    }
    case 'MAIL':
      return pathCommand('MAIL', 'FROM:', argument);
    case 'RCPT':
      return pathCommand('RCPT', 'TO:', argument);
    case 'DATA':
    case 'RSET':
    case 'QUIT':
    case 'STARTTLS':
      return argument.trim() === '' ? { verb: word } : invalid(`${word} (no argument)`);
    case 'EXPN':
      return { verb: 'EXPN' };
    case 'BDAT':
      return parseBdat(argument);
    case 'VRFY':
      return argument.trim() === '' ? invalid('VRFY <address>') : { verb: 'VRFY', argument };
    case 'AUTH':
      return argument.trim() === '' ? invalid('AUTH <mechanism> [initial-response]') : { verb: 'AUTH', argument };
    case 'NOOP':
    case 'HELP':
      return { verb: word, argument };
    default:
      return { verb: 'UNKNOWN' };
  }
}

function pathCommand(verb: 'MAIL' | 'RCPT', keyword: string, argument: string): Command {
  const usage = verb === 'MAIL' ? 'MAIL FROM:<address> [parameters]' : 'RCPT TO:<address> [parameters]';
  if (argument.slice(0, keyword.length).toUpperCase() !== keyword) return invalid(usage);
  let rest = argument.slice(keyword.length);
  // Not in RFC 5321's grammar, but common clients send "MAIL FROM: <a@b>"; one space is tolerated.
  if (rest.startsWith(' ')) rest = rest.slice(1);
  return { verb, argument: rest };
}

/** "BDAT" SP chunk-size [ SP "LAST" ] (RFC 3030 section 2). */
function parseBdat(argument: string): Command {
  const usage = 'BDAT <size> [LAST]';
  const words = argument.split(' ');
  const sizeWord = words[0] ?? '';
  if (!CHUNK_SIZE.test(sizeWord)) return invalid(usage);
  const size = Number(sizeWord);
  if (words.length === 1) return { verb: 'BDAT', size, last: false };
  if (words.length === 2 && words[1]?.toUpperCase() === 'LAST') return { verb: 'BDAT', size, last: true };
  return invalid(usage, size);
}
