import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../config/schema.js';
import { sessionConfigFor } from './connection-settings.js';

test('session config follows [limits] and [smtp]; STARTTLS is offered where TLS is not up yet', () => {
  const config = configSchema.parse({
    hostname: 'mx.example.test',
    limits: { max_message_size: 1000, max_recipients: 7, max_errors: 3, max_messages_per_connection: 2 },
    smtp: { bare_newline: 'normalize' },
  });
  const mx = sessionConfigFor(config, 'mx');
  assert.deepEqual(mx, {
    hostname: 'mx.example.test',
    listener: 'mx',
    limits: {
      maxMessageSize: 1000,
      maxRecipients: 7,
      maxCommandLine: 2048,
      maxTextLine: 1000,
      maxErrors: 3,
      maxMessagesPerConnection: 2,
    },
    bareNewline: 'normalize',
    starttls: true,
    auth: 'never',
    requireAuth: false,
    mechanisms: [],
  });
  assert.equal(sessionConfigFor(config, 'submission').starttls, true);
  assert.equal(sessionConfigFor(config, 'submissions').starttls, false);
});

test('AUTH: after TLS on the submission ports, which require it; on mx only with [auth] mx', () => {
  const config = configSchema.parse({});
  for (const kind of ['submission', 'submissions'] as const) {
    const s = sessionConfigFor(config, kind);
    assert.deepEqual([s.auth, s.requireAuth], ['after-tls', true]);
  }
  const mx = sessionConfigFor(configSchema.parse({ auth: { mx: true } }), 'mx');
  assert.deepEqual([mx.auth, mx.requireAuth], ['after-tls', false]);
});
