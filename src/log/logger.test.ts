import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chooseLogFormat, createLogger } from './logger.js';
import { logConnection, logMessage } from './mail-log.js';
import { reply } from '../mail/reply.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-log-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('json format: one JSON object per line with the mail log keys', async () => {
  const file = path.join(tmp, 'json.log');
  const fd = fs.openSync(file, 'w');
  const logger = createLogger({ level: 'info', format: 'json', destination: fd });
  logConnection(logger, {
    clientIp: '192.0.2.1',
    clientPort: 40000,
    listener: 'mx',
    helo: 'client.example',
    tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    messages: 2,
    rejected: 1,
    errors: 0,
    durationMs: 12,
    outcome: 'closed',
  });
  logMessage(
    logger,
    { clientIp: '192.0.2.1', helo: undefined, tls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' } },
    {
      queueId: 'abc123XYZ0001',
      sender: 'a@b.test',
      recipients: ['c@d.test'],
      size: 42,
      outcome: reply(250, '2.0.0', 'OK: queued as abc123XYZ0001'),
      authUser: 'a@b.test',
    },
  );
  logger.debug('not at this level');
  // Writes are asynchronous (off the hot path): wait until both lines have landed.
  let text = '';
  for (let i = 0; i < 500 && text.split('\n').length < 3; i++) {
    await new Promise((r) => setTimeout(r, 10));
    text = fs.readFileSync(file, 'utf8');
  }
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 2);
  const [conn, msg] = lines as [Record<string, unknown>, Record<string, unknown>];
  assert.equal(conn.msg, 'connection');
  for (const key of ['client_ip', 'client_port', 'listener', 'helo', 'tls_version', 'tls_cipher', 'messages', 'rejected', 'errors', 'duration_ms', 'outcome']) {
    assert.ok(key in conn, `connection line has ${key}`);
  }
  assert.equal(conn.tls_version, 'TLSv1.3');
  assert.equal(msg.msg, 'message');
  assert.equal(msg.queue_id, 'abc123XYZ0001');
  assert.equal(msg.helo, null);
  assert.deepEqual(msg.recipients, ['c@d.test']);
  assert.equal(msg.outcome, '250 2.0.0 OK: queued as abc123XYZ0001');
  // Accountability: who sent it, from where, over what.
  assert.deepEqual([msg.auth_user, msg.client_ip, msg.tls_version, msg.tls_cipher], ['a@b.test', '192.0.2.1', 'TLSv1.3', 'TLS_AES_128_GCM_SHA256']);
});

test('pretty format: readable text, not JSON', () => {
  const file = path.join(tmp, 'pretty.log');
  const logger = createLogger({ level: 'info', format: 'pretty', destination: file });
  logger.info({ port: 2525 }, 'listening');
  const text = fs.readFileSync(file, 'utf8');
  assert.match(text, /INFO.*listening/);
  assert.throws(() => JSON.parse(text));
});

test('auto format: pretty on a terminal, JSON elsewhere; a configured format wins', () => {
  assert.equal(chooseLogFormat('auto', true), 'pretty');
  assert.equal(chooseLogFormat('auto', false), 'json');
  assert.equal(chooseLogFormat('json', true), 'json');
  assert.equal(chooseLogFormat('pretty', false), 'pretty');
});
