import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand, type Command } from './command-parser.js';

describe('parseCommand', () => {
  const cases: Array<[string, Command]> = [
    ['EHLO client.example', { verb: 'EHLO', domain: 'client.example' }],
    ['ehlo client.example ', { verb: 'EHLO', domain: 'client.example' }],
    ['HeLo x', { verb: 'HELO', domain: 'x' }],
    ['MAIL FROM:<a@b> SIZE=1', { verb: 'MAIL', argument: '<a@b> SIZE=1' }],
    ['mail from: <a@b>', { verb: 'MAIL', argument: '<a@b>' }],
    ['RCPT TO:<c@d>', { verb: 'RCPT', argument: '<c@d>' }],
    ['DATA', { verb: 'DATA' }],
    ['rset', { verb: 'RSET' }],
    ['QUIT', { verb: 'QUIT' }],
    ['STARTTLS', { verb: 'STARTTLS' }],
    ['EXPN list', { verb: 'EXPN' }],
    ['BDAT 100', { verb: 'BDAT', size: 100, last: false }],
    ['BDAT 0 LAST', { verb: 'BDAT', size: 0, last: true }],
    ['bdat 5 last', { verb: 'BDAT', size: 5, last: true }],
    ['NOOP', { verb: 'NOOP', argument: '' }],
    ['NOOP anything', { verb: 'NOOP', argument: 'anything' }],
    ['HELP MAIL', { verb: 'HELP', argument: 'MAIL' }],
    ['VRFY bob', { verb: 'VRFY', argument: 'bob' }],
    ['AUTH PLAIN', { verb: 'AUTH', argument: 'PLAIN' }],
    ['auth plain AGEAYg==', { verb: 'AUTH', argument: 'plain AGEAYg==' }],
    ['XYZZY', { verb: 'UNKNOWN' }],
    ['', { verb: 'UNKNOWN' }],
    [' NOOP', { verb: 'UNKNOWN' }],
  ];
  for (const [line, expected] of cases) {
    test(JSON.stringify(line), () => assert.deepEqual(parseCommand(line), expected));
  }

  const invalid: Array<[string, number]> = [
    ['EHLO', 0],
    ['HELO  ', 0],
    ['MAIL <a@b>', 0],
    ['MAIL TO:<a@b>', 0],
    ['RCPT FROM:<a@b>', 0],
    ['DATA now', 0],
    ['RSET x', 0],
    ['QUIT now', 0],
    ['STARTTLS x', 0],
    ['VRFY', 0],
    ['AUTH', 0],
    ['AUTH  ', 0],
    ['BDAT', 0],
    ['BDAT x', 0],
    ['BDAT -1', 0],
    ['BDAT 1234567890123456', 0],
    ['BDAT 10 FIRST', 10],
    ['BDAT 10 LAST x', 10],
    ['BDAT 7  LAST', 7],
  ];
  for (const [line, skip] of invalid) {
    test(`${JSON.stringify(line)} is 501 5.5.4`, () => {
      const cmd = parseCommand(line);
      assert.equal(cmd.verb, 'INVALID');
      if (cmd.verb !== 'INVALID') return;
      assert.deepEqual([cmd.reply.code, cmd.reply.enhanced, cmd.skip], [501, '5.5.4', skip]);
    });
  }
});
