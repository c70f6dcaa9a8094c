import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { createServer, type Socket } from 'node:net';
import { LmtpCourier } from '../delivery/local/lmtp-courier.js';
import { Maildirs } from '../delivery/local/maildir.js';
import { SmtpSink } from '../../test/support/smtp-sink.js';
import { MaildirCourier } from '../delivery/local/maildir-courier.js';
import { deliveryNotices } from '../bounce/delivery-notices.js';
import { QueueManager, type QueueManagerOptions } from './queue-manager.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { SmtpError } from '../mail/reply.js';
import { testEnvelope as fixedDateEnvelope, testMessage } from '../../test/support/test-envelope.js';

const logger = pino({ level: 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function dataDir(): { dir: string; store: Store } {
  const dir = mkdtempSync(join(tmpdir(), 'postern-queue-'));
  const store = openSqliteStore(join(dir, 'postern.db'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => store.close());
  return { dir, store };
}

async function openQueue(dir: string, store: Store, extra: Partial<QueueManagerOptions> = {}): Promise<QueueManager> {
  const notices = deliveryNotices({ hostname: 'mx.example.test', store, postmaster: '', recipientDelimiter: '+', logger });
  const local = new MaildirCourier(new Maildirs(join(dir, 'mail'), 'mx.example.test'), 'mx.example.test', logger);
  const qm = await QueueManager.open({ dataDir: dir, hostname: 'mx.example.test', store, logger, retryBaseMs: 10, notices, local, ...extra });
  cleanups.push(() => qm.close());
  return qm;
}

function inbox(dir: string, mailbox: string): string[] {
  const [local, domain] = mailbox.split('@') as [string, string];
  const path = join(dir, 'mail', domain, local, 'new');
  return existsSync(path) ? readdirSync(path).map((name) => join(path, name)) : [];
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await condition()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Arriving now: retry and give-up times count from the arrival. */
function testEnvelope(recipients: { address: string; mailboxes: string[] }[]): ReturnType<typeof fixedDateEnvelope> {
  return fixedDateEnvelope(recipients, 'sender@remote.test', Date.now());
}

const toAlice = testEnvelope([{ address: 'alice@example.test', mailboxes: ['alice@example.test'] }]);

describe('QueueManager', () => {
  test('accepts, delivers into each local mailbox once, and forgets the message', async () => {
    const { dir, store } = dataDir();
    const qm = await openQueue(dir, store);
    const both = testEnvelope([
      { address: 'alice@example.test', mailboxes: ['alice@example.test'] },
      { address: 'team@example.test', mailboxes: ['alice@example.test', 'bob@example.test'] },
    ]);
    const id = await qm.accept(both, testMessage(1));
    assert.match(id, /^[0-9A-Za-z]{12,}$/);
    await waitFor('delivery', () => qm.stats.delivered === 1);

    assert.equal(inbox(dir, 'alice@example.test').length, 1, 'alice appears twice among the recipients but gets one copy');
    const bobs = inbox(dir, 'bob@example.test');
    assert.equal(bobs.length, 1);
    const text = readFileSync(bobs[0]!, 'utf8');
    assert.ok(text.startsWith('Return-Path: <sender@remote.test>\r\nDelivered-To: bob@example.test\r\nReceived: from client.remote.test'));
    assert.ok(text.includes(`with ESMTPS id ${id}\r\n`));
    assert.ok(!text.includes('\tfor <'), 'two recipients: no "for" clause');
    assert.ok(text.endsWith(testMessage(1).toString()));

    await qm.close();
    assert.deepEqual(await store.queueList(), []);
  });

  test('messages spooled but not delivered before a shutdown are delivered exactly once after it', async () => {
    const { dir, store } = dataDir();
    const first = await openQueue(dir, store, { deliveryPaused: true });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await first.accept(toAlice, testMessage(i)));
    await first.close();
    assert.equal(inbox(dir, 'alice@example.test').length, 0);
    assert.deepEqual((await store.queueList()).map((e) => e.queueId).sort(), [...ids].sort());

    const second = await openQueue(dir, store);
    await waitFor('recovered deliveries', () => second.stats.delivered === 3);
    await second.close();
    assert.equal(inbox(dir, 'alice@example.test').length, 3);
    assert.deepEqual(await store.queueList(), []);

    const third = await openQueue(dir, store);
    await sleep(50);
    await third.close();
    assert.equal(third.stats.delivered, 0);
    assert.equal(inbox(dir, 'alice@example.test').length, 3, 'nothing delivered a second time');
  });

  test('close() cuts a delivery stuck on a silent LMTP server after its grace; the message is delivered once after the restart', async () => {
    const { dir, store } = dataDir();
    const path = join(dir, 'lmtp');
    const held: Socket[] = [];
    let cut = 0;
    const silent = createServer((socket) => {
      held.push(socket);
      socket.on('close', () => cut++);
      socket.resume(); // and never a greeting
    });
    await new Promise<void>((resolve) => silent.listen(path, resolve));
    cleanups.push(async () => {
      held.forEach((socket) => socket.destroy());
      await new Promise((resolve) => silent.close(resolve));
    });
    // A greeting timeout far beyond the test: only close() can end the attempt.
    const timeouts = { connectMs: 5000, greetingMs: 600_000, mailMs: 5000, rcptMs: 5000, dataInitMs: 5000, dataBlockMs: 5000, dataFinalMs: 5000 };
    const lmtp = (): LmtpCourier => new LmtpCourier({ endpoint: { kind: 'unix', path }, lhloName: 'mx.example.test', logger, timeouts });
    const stuck = lmtp();
    const first = await openQueue(dir, store, { local: stuck, closeTimeoutMs: 50 });
    const id = await first.accept(toAlice, testMessage(5));
    await waitFor('the LMTP connection', () => held.length === 1);
    await first.close();
    await stuck.close();
    await waitFor('the session to be cut', () => cut === 1);
    assert.equal(first.stats.deferred, 1, 'the cut attempt is recorded as deferred');
    assert.deepEqual((await store.queueList()).map((e) => e.queueId), [id]);
    await new Promise((resolve) => silent.close(resolve));

    const sink = await SmtpSink.startUnix({ lmtp: true }, path);
    cleanups.push(() => sink.close());
    const answering = lmtp();
    const second = await openQueue(dir, store, { local: answering });
    await waitFor('the delivery after the restart', () => second.stats.delivered === 1);
    await second.close();
    await answering.close();
    assert.deepEqual(sink.messages.map((m) => m.delivered), [['alice@example.test']]);
    assert.deepEqual(await store.queueList(), []);
  });

  test('after a crash, a copy filed before it counts as delivered even though its mark was lost', async () => {
    // The crash between a copy and its (lazily synced) mark, replayed: the spool holds the
    // message with no marks, and alice's Maildir already holds the copy, moved to cur/ by a
    // reader the way Dovecot does. Bob's copy was cut short in tmp/.
    const { dir, store } = dataDir();
    const first = await openQueue(dir, store, { deliveryPaused: true });
    const both = testEnvelope([
      { address: 'alice@example.test', mailboxes: ['alice@example.test'] },
      { address: 'bob@example.test', mailboxes: ['bob@example.test'] },
    ]);
    const id = await first.accept(both, testMessage(3));
    const other = await first.accept(toAlice, testMessage(4));
    await first.close();
    const maildirs = new Maildirs(join(dir, 'mail'), 'mx.example.test');
    const filed = await maildirs.deliver('alice@example.test', 'sender@remote.test', testMessage(3), { queueId: id });
    const aliceDir = join(dir, 'mail', 'example.test', 'alice');
    renameSync(filed, join(aliceDir, 'cur', `${basename(filed)}:2,S`));
    const bobTmp = join(dir, 'mail', 'example.test', 'bob', 'tmp');
    mkdirSync(bobTmp, { recursive: true });
    writeFileSync(join(bobTmp, `1.M1P1Q1K${id}.mx.example.test,S=1,W=1`), 'x');

    const second = await openQueue(dir, store);
    await waitFor('recovered deliveries', () => second.stats.delivered === 2);
    await second.close();
    assert.equal(readdirSync(join(aliceDir, 'cur')).length, 1, 'alice keeps the one copy of the first message');
    const aliceNew = inbox(dir, 'alice@example.test');
    assert.equal(aliceNew.length, 1, 'and gets the other message, which had no copy yet');
    assert.ok(aliceNew[0]!.includes(`K${other}.`), aliceNew[0]);
    assert.equal(inbox(dir, 'bob@example.test').length, 1, 'bob had no copy: he gets it now');
    assert.deepEqual(readdirSync(bobTmp), [], 'the copy the crash cut short is cleared away');
    assert.deepEqual(await store.queueList(), []);

    const third = await openQueue(dir, store);
    await sleep(50);
    await third.close();
    assert.equal(third.stats.delivered, 0);
  });

  test('200 concurrent accepts are all durable and delivered, sharing fsyncs', async () => {
    const { dir, store } = dataDir();
    const qm = await openQueue(dir, store);
    const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => qm.accept(toAlice, testMessage(i))));
    assert.equal(new Set(ids).size, 200);
    assert.ok(qm.stats.spool.syncs < 200, `one fsync per message defeats group commit: ${qm.stats.spool.syncs}`);
    await waitFor('200 deliveries', () => qm.stats.delivered === 200);
    assert.equal(inbox(dir, 'alice@example.test').length, 200);
    await qm.close();
  });

  test('remote recipients stay queued as deferred; local copies are not repeated after a restart', async () => {
    const { dir, store } = dataDir();
    const mixed = testEnvelope([
      { address: 'alice@example.test', mailboxes: ['alice@example.test'] },
      { address: 'carol@elsewhere.test', mailboxes: [] },
    ]);
    const qm = await openQueue(dir, store);
    const id = await qm.accept(mixed, testMessage(7));
    await waitFor('deferral', () => qm.stats.deferred >= 1);
    await qm.close();
    assert.equal(inbox(dir, 'alice@example.test').length, 1);
    assert.deepEqual(
      (await store.queueList()).map((e) => [e.queueId, e.state]),
      [[id, 'deferred']],
    );

    const again = await openQueue(dir, store);
    await waitFor('deferral after restart', () => again.stats.deferred >= 1);
    await again.close();
    assert.equal(inbox(dir, 'alice@example.test').length, 1, 'alice keeps a single copy');
    assert.equal(again.stats.delivered, 0);
  });

  test('a failing mailbox is retried until it works, and the message is never dropped', async () => {
    const { dir, store } = dataDir();
    // A file where the domain's directory belongs: every delivery there fails (ENOTDIR).
    mkdirSync(join(dir, 'mail'), { recursive: true });
    writeFileSync(join(dir, 'mail', 'example.test'), 'in the way');
    const qm = await openQueue(dir, store);
    await qm.accept(toAlice, testMessage(9));
    await waitFor('a failed attempt', () => qm.stats.failedAttempts >= 2);
    assert.equal(qm.stats.delivered, 0);
    rmSync(join(dir, 'mail', 'example.test'));
    await waitFor('delivery after the retry', () => qm.stats.delivered === 1);
    assert.equal(inbox(dir, 'alice@example.test').length, 1);
    await qm.close();
  });

  test('refuses new messages with 451 4.3.2 once closing', async () => {
    const { dir, store } = dataDir();
    const qm = await openQueue(dir, store);
    await qm.close();
    await assert.rejects(qm.accept(toAlice, testMessage(1)), (err: unknown) => {
      assert.ok(err instanceof SmtpError);
      assert.equal(err.reply.code, 451);
      assert.equal(err.reply.enhanced, '4.3.2');
      return true;
    });
  });
});
