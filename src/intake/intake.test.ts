import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { QueueIdGenerator } from '../mail/queue-id.js';
import { SmtpError } from '../mail/reply.js';
import { Spool } from '../spool/spool.js';
import { testEnvelope } from '../../test/support/test-envelope.js';
import { Intake } from './intake.js';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function setup(): Promise<{ intake: Intake; spool: Spool }> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-intake-'));
  dirs.push(dir);
  const { spool } = await Spool.open({ dir, logger });
  const intake = new Intake({ spool, queueIds: new QueueIdGenerator(), hostname: 'mx.example.test', maxReceivedHeaders: 2, logger });
  return { intake, spool };
}

const envelope = testEnvelope([{ address: 'alice@example.test', mailboxes: ['alice@example.test'] }]);

describe('Intake', () => {
  test('admits: our Received header first, the client bytes after, on disk when it resolves', async () => {
    const { intake, spool } = await setup();
    const client = Buffer.from('Subject: hi\r\n\r\nbody\r\n');
    const spooled = await intake.admit(envelope, client, { loopCheck: true });
    assert.match(spooled.message.toString(), /^Received: from .*\r\n(\t.*\r\n)*Subject: hi\r\n\r\nbody\r\n$/);
    assert.match(spooled.message.toString(), new RegExp(`id ${spooled.queueId}`));
    const read = await spool.read(spooled.queueId);
    assert.deepEqual(read.message, spooled.message);
    assert.equal(read.envelope.sender, envelope.sender);
    await spool.close();
  });

  test('a message with more Received headers than allowed is refused as a loop (554 5.4.6), and not spooled', async () => {
    const { intake, spool } = await setup();
    const looping = Buffer.from('Received: a\r\nReceived: b\r\nReceived: c\r\n\r\nbody\r\n');
    await assert.rejects(intake.admit(envelope, looping, { loopCheck: true }), (err: unknown) => {
      assert.ok(err instanceof SmtpError);
      assert.equal(`${err.reply.code} ${err.reply.enhanced}`, '554 5.4.6');
      return true;
    });
    assert.equal(spool.stats.appended, 0);
    // Our own notices skip the check: a bounce quotes the looping message's headers.
    await intake.admit(envelope, looping, { loopCheck: false });
    await spool.close();
  });
});
