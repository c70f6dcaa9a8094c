import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countReceivedHeaders } from './loop-check.js';

test('counts Received fields in the header only, any case, not continuation lines', () => {
  const message = Buffer.from(
    'Received: from a\r\n\tby b; date\r\nRECEIVED : from c\r\nX-Received: no\r\nSubject: hi\r\n\r\nReceived: in the body\r\n',
  );
  assert.equal(countReceivedHeaders(message), 2);
  assert.equal(countReceivedHeaders(Buffer.from('Subject: none\r\n\r\n')), 0);
});
