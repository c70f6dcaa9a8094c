import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { PostfixSmtpSink, SMTP_SINK } from './postfix-smtp-sink.js';
import { waitFor } from './wait-for.js';

// The end-to-end bench rows count what reached the sink from its counters; a count that stayed
// at 0, or counted sessions instead of messages, would make those rows wait forever or lie.
describe('PostfixSmtpSink', { skip: existsSync(SMTP_SINK) ? false : `${SMTP_SINK} not installed (Debian package postfix)` }, () => {
  let sink: PostfixSmtpSink;
  before(async () => {
    sink = await PostfixSmtpSink.start();
  });
  after(() => sink.stop());

  test('counts each message it took, not each session', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true, pool: true, maxConnections: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        await transport.sendMail({ envelope: { from: 'a@example.test', to: ['b@example.test'] }, raw: `Subject: ${i}\r\n\r\nbody\r\n` });
      }
    } finally {
      transport.close();
    }
    await waitFor(() => (sink.delivered() >= 3 ? true : undefined), 5_000).catch(() => undefined);
    assert.equal(sink.delivered(), 3);
  });
});
