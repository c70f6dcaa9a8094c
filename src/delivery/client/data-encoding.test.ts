import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dotStuff, hasEightBit, needsSmtpUtf8 } from './data-encoding.js';

describe('dotStuff', () => {
  test('doubles leading dots and ends with CRLF.CRLF', () => {
    assert.equal(dotStuff(Buffer.from('.a\r\nb.\r\n..c\r\n.\r\n')).toString(), '..a\r\nb.\r\n...c\r\n..\r\n.\r\n');
  });
  test('adds a missing final CRLF', () => {
    assert.equal(dotStuff(Buffer.from('a\r\n.b')).toString(), 'a\r\n..b\r\n.\r\n');
    assert.equal(dotStuff(Buffer.alloc(0)).toString(), '.\r\n');
  });
});

test('hasEightBit and needsSmtpUtf8', () => {
  assert.equal(hasEightBit(Buffer.from('plain ascii\r\n')), false);
  assert.equal(hasEightBit(Buffer.from('caf\u00e9', 'utf8')), true);
  assert.equal(needsSmtpUtf8('a@b.test'), false);
  assert.equal(needsSmtpUtf8('j\u00f6rg@b.test'), true);
});
