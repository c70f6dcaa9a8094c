import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { PosternInstance } from './postern-process.js';
import { freePort } from './postfix.js';

// The benchmarks run the server with its log in a file (logToFile): a server that did not start,
// or a log that went elsewhere, would make them measure a quieter server than the one they name.
describe('PosternInstance with logToFile', () => {
  test('starts on its fixed port and writes its log, a line per accepted message among them, into the file', async () => {
    const mxPort = await freePort();
    const postern = new PosternInstance({ mxPort, submission: false, logLevel: 'info', logToFile: true });
    try {
      await postern.cliOk(['domain', 'add', 'example.test']);
      await postern.addUser('alice@example.test', 'a password of some length');
      const server = await postern.start();
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: mxPort, secure: false, ignoreTLS: true });
      const info = await transport.sendMail({ envelope: { from: 'bob@elsewhere.test', to: ['alice@example.test'] }, raw: 'Subject: hi\r\n\r\nhello\r\n' });
      transport.close();
      await server.stop();
      const queueId = /queued as (\S+)/.exec(info.response)?.[1];
      assert.ok(queueId, info.response);
      const lines = readFileSync(postern.logPath!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(lines.some((l) => l['msg'] === 'listening'), 'the listening line is in the file');
      assert.ok(lines.some((l) => l['queue_id'] === queueId), `a line names ${queueId}`);
    } finally {
      await postern.dispose();
    }
  });
});
