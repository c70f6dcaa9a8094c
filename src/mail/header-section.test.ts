import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { headerSection, headerSectionBounds } from './header-section.js';

describe('headerSection', () => {
  test('ends after the empty line, with CRLF or a bare LF', () => {
    assert.equal(headerSection(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore')).toString(), 'A: 1\r\nB: 2\r\n\r\n');
    assert.equal(headerSection(Buffer.from('A: 1\nB: 2\n\nbody')).toString(), 'A: 1\nB: 2\n\n');
  });

  test('a message that starts with the empty line has an empty header section', () => {
    // The first empty line counts, not the first CRLF CRLF further down in the body.
    assert.deepEqual(headerSectionBounds(Buffer.from('\r\nbody\r\n\r\nmore')), { start: 0, end: 2 });
  });

  test('without an empty line the whole message is header', () => {
    const message = Buffer.from('A: 1\r\nB: 2');
    assert.deepEqual(headerSectionBounds(message), { start: message.length, end: message.length });
    assert.equal(headerSection(message).length, message.length);
  });
});
