// A 250 after the final dot is a promise (RFC 5321 4.1.1.4: the server "accepts responsibility
// for delivering or relaying the message"). These tests break the server in the two ways that
// happen in production — kill -9 and SIGTERM mid-traffic — restart it on the same data_dir, and
// check that every message it said 250 to reaches the Maildir. Duplicates are allowed; loss is not.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { delay, PosternInstance, type PosternProcess } from './support/postern-process.js';
import { SmtpClient } from './support/smtp-client.js';

const ALICE = 'alice@example.test';
const SENDER = 'sender@remote.test';
const CONNECTIONS = 4;

async function setUp(t: TestContext): Promise<{ instance: PosternInstance; server: PosternProcess }> {
  const instance = new PosternInstance();
  t.after(() => instance.dispose());
  await instance.cliOk(['domain', 'add', 'example.test']);
  await instance.addUser(ALICE);
  return { instance, server: await instance.start() };
}

function messageFor(marker: string): string {
  return `From: <${SENDER}>\r\nTo: <${ALICE}>\r\nSubject: ${marker}\r\n\r\nbody of ${marker}\r\n`;
}

/** Polls until every marker is in alice's Maildir; reports the missing ones on timeout. */
async function assertAllDelivered(instance: PosternInstance, markers: Iterable<string>, timeoutMs = 30_000): Promise<void> {
  const wanted = [...markers];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stored = instance.readMaildir(ALICE).map((m) => m.text);
    const missing = wanted.filter((marker) => !stored.some((text) => text.includes(`Subject: ${marker}`) && text.includes(`body of ${marker}`)));
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      assert.fail(`${missing.length} of ${wanted.length} accepted messages lost, e.g. ${missing.slice(0, 3).join(', ')}`);
    }
    await delay(100);
  }
}

test('SIGTERM as soon as the server says "listening" is a clean stop (exit 0)', async (t) => {
  // A supervisor may stop the server the moment it is up; the signal handlers must already be
  // in place when it announces that it listens.
  const instance = new PosternInstance();
  t.after(() => instance.dispose());
  for (let round = 0; round < 3; round++) {
    const server = await instance.start();
    assert.equal(await server.stop(), 0, server.log());
  }
});

test('kill -9 right after the last 250 loses nothing', async (t) => {
  const { instance, server } = await setUp(t);
  const perConnection = 10;
  const accepted: string[] = [];
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => SmtpClient.open(server.port('mx'))));
  t.after(() => clients.forEach((c) => c.destroy()));

  await Promise.all(
    clients.map(async (client, c) => {
      for (let i = 0; i < perConnection; i++) {
        const marker = `crash-${c}-${i}-${randomUUID()}`;
        const reply = await client.sendMail(SENDER, [ALICE], messageFor(marker));
        assert.equal(reply.code, 250, reply.text);
        accepted.push(marker);
      }
    }),
  );
  await server.kill();

  const restarted = await instance.start();
  await assertAllDelivered(instance, accepted);
  assert.ok(instance.readMaildir(ALICE).length >= CONNECTIONS * perConnection);
  assert.equal(await restarted.stop(), 0, restarted.log());
});

test('SIGTERM while messages flow: exit 0, and every accepted message is delivered after restart', async (t) => {
  const { instance, server } = await setUp(t);
  const port = server.port('mx');
  const accepted = new Set<string>();
  let stopped = false;

  // Each sender keeps sending until the server refuses or hangs up (421 during shutdown is fine).
  const sender = async (c: number): Promise<void> => {
    let client: SmtpClient | undefined;
    try {
      client = await SmtpClient.open(port);
      for (let i = 0; !stopped; i++) {
        const marker = `term-${c}-${i}-${randomUUID()}`;
        const reply = await client.sendMail(SENDER, [ALICE], messageFor(marker));
        if (reply.code !== 250) break;
        accepted.add(marker);
      }
    } catch {
      // The connection closed under us: the shutdown we asked for.
    } finally {
      client?.destroy();
    }
  };
  const senders = Array.from({ length: CONNECTIONS }, (_, c) => sender(c));

  const deadline = Date.now() + 20_000;
  while (accepted.size < 20) {
    assert.ok(Date.now() < deadline, `only ${accepted.size} messages accepted before the deadline`);
    await delay(20);
  }
  const code = await server.stop();
  stopped = true;
  await Promise.all(senders);
  assert.equal(code, 0, `SIGTERM must end the server with exit code 0\n${server.log()}`);

  const restarted = await instance.start();
  await assertAllDelivered(instance, accepted);
  assert.equal(await restarted.stop(), 0, restarted.log());
});
