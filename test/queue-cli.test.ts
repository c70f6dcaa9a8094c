// `postern queue ...` end to end: the real server (child process) holds a deferred message for an
// SMTP sink that answers 450, and the CLI (another process) lists, shows, holds, releases, retries,
// flushes and deletes it. Also the mail-loop refusal over SMTP (554 5.4.6).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDnsServer } from './support/dns-server.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, relayInstance, submit } from './support/relay-world.js';
import { SmtpClient } from './support/smtp-client.js';
import { SmtpSink } from './support/smtp-sink.js';

const ALICE = `alice@${LOCAL_DOMAIN}`;

interface ListedMessage {
  id: string;
  state: string;
  sender: string;
  recipients: { address: string; status: string; attempts: number; lastReply: string | null }[];
}

describe('postern queue', () => {
  let dns: TestDnsServer;
  let sink: SmtpSink;
  let instance: PosternInstance;
  let server: PosternProcess;
  const replies: Record<string, string> = {};

  before(async () => {
    dns = await TestDnsServer.start();
    dns.set('remote.test', [{ type: 'MX', preference: 10, exchange: 'mx.remote.test' }]);
    dns.set('mx.remote.test', [{ type: 'A', address: '127.0.0.1' }]);
    sink = await SmtpSink.start({ name: 'mx.remote.test', recipients: replies });
    instance = await relayInstance({
      dns,
      relay: { mx_port: sink.port, mta_sts: { enabled: false } },
      // Retries an hour apart: whatever happens next is the CLI's doing.
      queue: { retry_first: '1h', retry_max: '1h', max_received_headers: 5 },
      users: [ALICE],
    });
    server = await instance.start();
  });

  after(async () => {
    await server?.stop();
    await instance?.dispose();
    await sink?.close();
    await dns?.close();
  });

  async function list(): Promise<ListedMessage[]> {
    return JSON.parse(await instance.cliOk(['queue', 'list', '--json'])) as ListedMessage[];
  }

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
    for (let i = 0; i < 100; i++) {
      const value = await probe();
      if (value !== undefined) return value;
      await sleep(100);
    }
    assert.fail(`timed out waiting for ${what}`);
  }

  /** Submits a message to `to` (answered 450) and waits for its deferral; returns its queue id. */
  async function deferred(to: string): Promise<{ id: string; subject: string }> {
    replies[to] = '450 4.2.0 mailbox busy';
    const subject = marker('queued');
    await submit(server.port('submission'), { from: ALICE, to: [to], marker: subject });
    const id = await waitFor('the deferral', async () =>
      (await list()).find((m) => m.recipients[0]?.address === to && m.recipients[0].status === 'deferred')?.id,
    );
    return { id, subject };
  }

  test('list and show a deferred message, with the remote reply', async () => {
    const { id, subject } = await deferred('slow@remote.test');
    const text = await instance.cliOk(['queue', 'list']);
    assert.match(text, new RegExp(`^${id}  \\d+ bytes  \\S+ old  <${ALICE}>$`, 'm'));
    assert.match(text, /<slow@remote\.test>  deferred  after 1 attempt  next in \S+  \(.*450 4\.2\.0 mailbox busy\)/);

    const shown = await instance.cliOk(['queue', 'show', id]);
    assert.match(shown, new RegExp(`Subject: ${subject}`));
    assert.match(shown, /arrived .* via submission as alice@postern\.test/);
    const json = JSON.parse(await instance.cliOk(['queue', 'show', id, '--json'])) as { headers: string; recipients: unknown[] };
    assert.match(json.headers, /^Received: from /);
    assert.equal(json.recipients.length, 1);

    const unknown = await instance.cli(['queue', 'show', 'NoSuchQueueId0']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^postern: no message NoSuchQueueId0 in the queue/);
    await instance.cliOk(['queue', 'delete', id]);
  });

  test('hold stops attempts, release and retry deliver it', async () => {
    const { id } = await deferred('held@remote.test');
    assert.match(await instance.cliOk(['queue', 'hold', id]), /is on hold/);
    assert.equal((await list()).find((m) => m.id === id)?.state, 'hold');
    replies['held@remote.test'] = '250 ok';
    assert.match(await instance.cliOk(['queue', 'retry', id]), /is being retried now/);
    await sleep(300);
    assert.equal(sink.messages.filter((m) => m.recipients.includes('held@remote.test')).length, 0, 'held: retry does not deliver');

    assert.match(await instance.cliOk(['queue', 'release', id]), /is released/);
    await waitFor('delivery after release', async () => (sink.messages.some((m) => m.recipients.includes('held@remote.test')) ? true : undefined));
    await waitFor('the queue to forget it', async () => ((await list()).some((m) => m.id === id) ? undefined : true));
  });

  test('flush retries every deferred message now', async () => {
    const a = await deferred('a@remote.test');
    const b = await deferred('b@remote.test');
    replies['a@remote.test'] = '250 ok';
    replies['b@remote.test'] = '250 ok';
    assert.match(await instance.cliOk(['queue', 'flush']), /every deferred message is being retried/);
    await waitFor('both delivered', async () => ((await list()).some((m) => m.id === a.id || m.id === b.id) ? undefined : true));
    assert.ok(sink.messages.some((m) => m.recipients.includes('a@remote.test')));
    assert.ok(sink.messages.some((m) => m.recipients.includes('b@remote.test')));
  });

  test('delete removes a message for good, without a bounce', async () => {
    const { id } = await deferred('doomed@remote.test');
    assert.match(await instance.cliOk(['queue', 'delete', id]), /is deleted/);
    assert.equal((await list()).some((m) => m.id === id), false);
    assert.equal((await instance.cli(['queue', 'retry', id])).code, 1);
    await sleep(300);
    assert.equal(instance.readMaildir(ALICE).length, 0, 'no DSN');
  });

  test('a message with too many Received headers is refused as a loop (554 5.4.6)', async () => {
    const c = await SmtpClient.open(server.port('mx'));
    try {
      const hops = (n: number): string =>
        Array.from({ length: n }, (_, i) => `Received: from hop${i}.example by hop${i + 1}.example; Thu, 2 Jan 2025 03:04:05 +0000\r\n`).join('');
      const looping = await c.sendMail('someone@remote.test', [ALICE], `${hops(6)}Subject: loop\r\n\r\nround and round\r\n`);
      assert.equal(looping.code, 554);
      assert.match(looping.text, /5\.4\.6 Too many Received headers: mail loop\?/);
      const fine = await c.sendMail('someone@remote.test', [ALICE], `${hops(5)}Subject: fine\r\n\r\nfive hops\r\n`);
      assert.equal(fine.code, 250, fine.text);
    } finally {
      await c.quit();
    }
    await instance.waitForMessage(ALICE, 'Subject: fine');
  });
});
