import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand } from './command.js';

describe('parseCommand', () => {
  const cases: Array<[string, unknown]> = [
    ['CAPA', { verb: 'CAPA' }],
    ['capa', { verb: 'CAPA' }],
    ['Stat', { verb: 'STAT' }],
    ['QUIT', { verb: 'QUIT' }],
    ['STLS', { verb: 'STLS' }],
    ['USER alice@example.test', { verb: 'USER', name: 'alice@example.test' }],
    ['PASS with spaces  inside ', { verb: 'PASS', password: 'with spaces  inside ' }],
    ['AUTH', { verb: 'AUTH', mechanism: undefined, initialResponse: undefined }],
    ['AUTH plain', { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: undefined }],
    ['AUTH PLAIN =', { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: '=' }],
    ['AUTH PLAIN AGEAYg==', { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: 'AGEAYg==' }],
    ['LIST', { verb: 'LIST', message: undefined }],
    ['LIST 2', { verb: 'LIST', message: 2 }],
    ['UIDL 007', { verb: 'UIDL', message: 7 }],
    ['RETR 1', { verb: 'RETR', message: 1 }],
    ['DELE 0', { verb: 'DELE', message: 0 }],
    ['TOP 1 0', { verb: 'TOP', message: 1, lines: 0 }],
    ['APOP mrose c4c9334bac560ecc979e58001b3e22fb', { verb: 'APOP' }],
    ['FOO', { verb: 'unknown' }],
    ['', { verb: 'unknown' }],
    ['FOO  x', { verb: 'unknown' }],
    ['STAT x', { verb: 'invalid', syntax: 'STAT' }],
    ['USER', { verb: 'invalid', syntax: 'USER name' }],
    ['USER a b', { verb: 'invalid', syntax: 'USER name' }],
    [`USER ${'a'.repeat(60)}@example.test`, { verb: 'USER', name: `${'a'.repeat(60)}@example.test` }],
    [`AUTH ${'A'.repeat(41)}`, { verb: 'invalid', syntax: 'AUTH mechanism [initial-response]' }],
    ['PASS', { verb: 'invalid', syntax: 'PASS password' }],
    ['PASS ', { verb: 'invalid', syntax: 'PASS password' }],
    ['RETR', { verb: 'invalid', syntax: 'RETR message' }],
    ['RETR x', { verb: 'invalid', syntax: 'RETR message' }],
    ['RETR -1', { verb: 'invalid', syntax: 'RETR message' }],
    ['RETR 1e3', { verb: 'invalid', syntax: 'RETR message' }],
    ['RETR 1.0', { verb: 'invalid', syntax: 'RETR message' }],
    ['RETR 1234567890', { verb: 'invalid', syntax: 'RETR message' }],
    ['RETR 1 2', { verb: 'invalid', syntax: 'RETR message' }],
    ['RETR  1', { verb: 'invalid', syntax: 'RETR message' }],
    ['LIST 1 ', { verb: 'invalid', syntax: 'LIST [message]' }],
    ['TOP 1', { verb: 'invalid', syntax: 'TOP message lines' }],
    ['TOP 1 x', { verb: 'invalid', syntax: 'TOP message lines' }],
    ['AUTH PLAIN a b', { verb: 'invalid', syntax: 'AUTH mechanism [initial-response]' }],
  ];
  for (const [line, expected] of cases) {
    test(JSON.stringify(line), () => assert.deepEqual(parseCommand(line), expected));
  }
});
