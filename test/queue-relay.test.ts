// The queue's scheduling and bounces with real peers: a real QueueManager and RemoteDelivery, a
// DNS server on loopback that sends remote.test to 127.0.0.1, and an SMTP sink answering each
// recipient as the test says. Retry times are tiny so the scenarios run in seconds.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { configSchema } from '../src/config/schema.js';
import { RemoteDelivery } from '../src/delivery/remote/remote-delivery.js';
import { createDnsClient } from '../src/dns/resolver.js';
import { Maildirs } from '../src/delivery/local/maildir.js';
import { MaildirCourier } from '../src/delivery/local/maildir-courier.js';
import { deliveryNotices } from '../src/bounce/delivery-notices.js';
import { QueueManager, type QueueManagerOptions } from '../src/queue/queue-manager.js';
import type { Envelope, RcptParams } from '../src/mail/envelope.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { Store } from '../src/store/store.js';
import { TestDnsServer } from './support/dns-server.js';
import { SmtpSink, type SinkOptions } from './support/smtp-sink.js';

const logger = pino({ level: 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const ALICE = 'alice@example.test';
const ADMIN = 'admin@example.test';

interface World {
  readonly dir: string;
  readonly store: Store;
  readonly sink: SmtpSink;
  /** What the sink answers to RCPT, per address; change it between attempts. */
  readonly replies: Record<string, string>;
  open(extra?: Partial<QueueManagerOptions>): Promise<QueueManager>;
}

async function world(sinkOptions: SinkOptions = {}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-relay-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(join(dir, 'postern.db'));
  cleanups.push(() => store.close());
  await store.addDomain('example.test');
  await store.addUser(ALICE, { passwordHash: 'x' });
  await store.addUser(ADMIN, { passwordHash: 'x' });
  const dns = await TestDnsServer.start();
  cleanups.push(() => dns.close());
  dns.set('remote.test', [{ type: 'MX', preference: 10, exchange: 'mx.remote.test' }]);
  dns.set('mx.remote.test', [{ type: 'A', address: '127.0.0.1' }]);
  const replies: Record<string, string> = {};
  const sink = await SmtpSink.start({ name: 'mx.remote.test', recipients: replies, dsn: true, ...sinkOptions });
  cleanups.push(() => sink.close());
  const config = configSchema.parse({
    hostname: 'mx.example.test',
    data_dir: dir,
    relay: { dns_servers: [`127.0.0.1:${dns.port}`], mx_port: sink.port, mta_sts: { enabled: false } },
  });
  const open = async (extra: Partial<QueueManagerOptions> = {}): Promise<QueueManager> => {
    const remote = new RemoteDelivery({ config, dns: createDnsClient({ servers: config.relay.dns_servers }), logger });
    const qm = await QueueManager.open({
      dataDir: dir,
      hostname: 'mx.example.test',
      store,
      logger,
      local: new MaildirCourier(new Maildirs(join(dir, 'mail'), 'mx.example.test'), 'mx.example.test', logger),
      remote,
      retryBaseMs: 100,
      retryMaxMs: 200,
      notices: deliveryNotices({ hostname: 'mx.example.test', store, postmaster: ADMIN, recipientDelimiter: '+', logger }),
      controlPollMs: 50,
      ...extra,
    });
    cleanups.push(async () => {
      await qm.close();
      await remote.close();
    });
    return qm;
  };
  return { dir, store, sink, replies, open };
}

function envelope(recipients: { address: string; params?: RcptParams }[], sender = ALICE, mail: Envelope['mailParams'] = {}): Envelope {
  return {
    sender,
    mailParams: mail,
    recipients: recipients.map((r) => ({ address: r.address, params: r.params ?? {}, mailboxes: [] })),
    arrival: {
      clientIp: '127.0.0.1',
      clientPort: 40000,
      helo: 'laptop.example.test',
      protocol: 'ESMTPSA',
      listener: 'submission',
      authUser: ALICE,
      receivedAt: Date.now(),
    },
  };
}

const MESSAGE = Buffer.from(`From: ${ALICE}\r\nTo: someone@remote.test\r\nSubject: quarterly report\r\n\r\nNumbers.\r\n`);

function inbox(dir: string, mailbox: string): string[] {
  const [local, domain] = mailbox.split('@') as [string, string];
  const path = join(dir, 'mail', domain, local, 'new');
  return existsSync(path) ? readdirSync(path).map((name) => readFileSync(join(path, name), 'utf8')) : [];
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (await condition()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The per-recipient fields of a DSN's message/delivery-status part, by Final-Recipient. */
function statusFields(dsn: string): Map<string, Record<string, string>> {
  const part = /Content-Type: message\/delivery-status[^\r]*\r\n(?:[^\r]+\r\n)*\r\n([\s\S]*?)\r\n--/.exec(dsn)?.[1];
  assert.ok(part, 'a message/delivery-status part');
  const out = new Map<string, Record<string, string>>();
  for (const block of part.split('\r\n\r\n').slice(1)) {
    const fields: Record<string, string> = {};
    for (const line of block.split('\r\n')) {
      const at = line.indexOf(':');
      if (at > 0) fields[line.slice(0, at)] = line.slice(at + 1).trim();
    }
    out.set(fields['Final-Recipient']!.replace(/^rfc822;\s*/, ''), fields);
  }
  return out;
}

describe('queue scheduling against a real SMTP peer', () => {
  test('a temporary failure is retried with backoff and then delivered; the sender hears nothing', async () => {
    const w = await world();
    w.replies['bob@remote.test'] = '450 4.2.0 mailbox busy';
    const qm = await w.open();
    const id = await qm.accept(envelope([{ address: 'bob@remote.test' }]), MESSAGE);
    await waitFor('a deferral recorded in the store', async () => {
      const r = (await w.store.queueGet(id))?.recipientStates?.[0];
      return r?.status === 'deferred' && r.attempts >= 1;
    });
    const state = (await w.store.queueGet(id))!.recipientStates![0]!;
    assert.equal(state.lastReply, '450 4.2.0 mailbox busy');
    assert.ok(state.nextAttemptAt! > state.lastAttemptAt!, 'a retry time after the attempt');
    assert.equal(w.sink.messages.length, 0);

    w.replies['bob@remote.test'] = '250 2.1.5 ok';
    await waitFor('delivery on a retry', () => qm.stats.delivered === 1);
    assert.equal(w.sink.messages.length, 1);
    assert.deepEqual(w.sink.messages[0]!.recipients, ['bob@remote.test']);
    assert.ok(w.sink.messages[0]!.data.toString().includes('Subject: quarterly report'));
    await waitFor('the message to leave the queue', async () => (await w.store.queueGet(id)) === undefined);
    assert.equal(inbox(w.dir, ALICE).length, 0, 'no DSN for a delivery nobody asked about');
  });

  test('a permanent failure bounces at once: an RFC 3464 DSN in the local sender\'s Maildir', async () => {
    const w = await world();
    w.replies['carol@remote.test'] = '550 5.1.1 no such user';
    const qm = await w.open();
    const id = await qm.accept(
      envelope(
        [{ address: 'carol@remote.test', params: { orcpt: { addrType: 'rfc822', address: 'Carol@remote.test' } } }, { address: 'bob@remote.test' }],
        ALICE,
        { envid: 'ENV-7', ret: 'HDRS' },
      ),
      MESSAGE,
    );
    await waitFor('the bounce', () => inbox(w.dir, ALICE).length === 1);
    const dsn = inbox(w.dir, ALICE)[0]!;
    assert.match(dsn, /^Return-Path: <>\r\n/, 'sent from the null sender');
    assert.match(dsn, /Content-Type: multipart\/report; report-type=delivery-status;/);
    assert.match(dsn, /<carol@remote\.test>: /);
    assert.match(dsn, /Original-Envelope-Id: ENV-7\r\n/);
    const fields = statusFields(dsn);
    assert.deepEqual([...fields.keys()], ['carol@remote.test'], 'only the failed recipient is reported');
    const carol = fields.get('carol@remote.test')!;
    assert.equal(carol['Action'], 'failed');
    assert.equal(carol['Status'], '5.1.1');
    assert.equal(carol['Original-Recipient'], 'rfc822;Carol@remote.test');
    assert.equal(carol['Diagnostic-Code'], 'smtp; 550 5.1.1 no such user');
    assert.match(carol['Remote-MTA']!, /^dns; /);
    assert.match(dsn, /Content-Type: text\/rfc822-headers[\s\S]*Subject: quarterly report/, 'RET=HDRS: the header comes back');
    assert.ok(!dsn.includes('Numbers.'), 'RET=HDRS: not the body');
    await waitFor('the other recipient delivered', () => w.sink.messages.length === 1);
    await waitFor('the message to leave the queue', async () => (await w.store.queueGet(id)) === undefined);
  });

  test('a message deferred past delay_warning brings one "delayed" DSN; past give_up, the bounce', async () => {
    const w = await world();
    w.replies['dave@remote.test'] = '451 4.7.1 greylisted, try later';
    const qm = await w.open({ delayWarningMs: 300, giveUpMs: 1500 });
    const id = await qm.accept(envelope([{ address: 'dave@remote.test' }]), MESSAGE);
    await waitFor('the delay warning', () => inbox(w.dir, ALICE).length === 1);
    const warning = inbox(w.dir, ALICE)[0]!;
    assert.match(warning, /Subject: Delayed Mail/);
    const dave = statusFields(warning).get('dave@remote.test')!;
    assert.equal(dave['Action'], 'delayed');
    assert.equal(dave['Status'], '4.7.1');
    assert.ok(dave['Will-Retry-Until']);

    await waitFor('the bounce after give_up', () => inbox(w.dir, ALICE).length === 2);
    const bounce = inbox(w.dir, ALICE).find((m) => m.includes('Subject: Undelivered Mail'))!;
    const fields = statusFields(bounce).get('dave@remote.test')!;
    assert.equal(fields['Action'], 'failed');
    assert.equal(fields['Status'], '4.7.1', 'the last temporary status, as Postfix reports it');
    assert.match(bounce, /gave up after trying for/);
    await waitFor('the message to leave the queue', async () => (await w.store.queueGet(id)) === undefined);
    assert.equal(inbox(w.dir, ALICE).length, 2, 'one warning, one bounce');
  });

  test('NOTIFY=NEVER: no DSN; NOTIFY=SUCCESS to a peer without DSN: a "relayed" report', async () => {
    const w = await world({ dsn: false });
    w.replies['erin@remote.test'] = '550 5.7.1 refused by policy';
    const qm = await w.open();
    await qm.accept(envelope([{ address: 'erin@remote.test', params: { notify: [] } }]), MESSAGE);
    await qm.accept(envelope([{ address: 'frank@remote.test', params: { notify: ['SUCCESS'] } }]), MESSAGE);
    await waitFor('both finished', () => qm.stats.bounced === 1 && w.sink.messages.length === 1);
    await waitFor('the success report', () => inbox(w.dir, ALICE).length >= 1);
    await sleep(200);
    const reports = inbox(w.dir, ALICE);
    assert.equal(reports.length, 1, 'one report: the success one');
    assert.match(reports[0]!, /Subject: Successful Mail Delivery Report/);
    assert.equal(statusFields(reports[0]!).get('frank@remote.test')!['Action'], 'relayed');
    assert.equal(qm.stats.bounced, 1);
  });

  test('NOTIFY=SUCCESS passed on to a peer that offers DSN: the report is its job, not ours', async () => {
    const w = await world();
    const qm = await w.open();
    await qm.accept(envelope([{ address: 'frank@remote.test', params: { notify: ['SUCCESS'] } }]), MESSAGE);
    await waitFor('delivery', () => qm.stats.delivered === 1);
    assert.deepEqual(w.sink.messages[0]!.rcptParams[0], ['NOTIFY=SUCCESS']);
    await sleep(200);
    assert.equal(inbox(w.dir, ALICE).length, 0, 'no "relayed" report of our own (RFC 3461 4.1)');
    assert.equal(qm.stats.notices, 0);
  });

  test('an alias forwarding outside: the local copy, one relayed copy, and a bounce naming the alias', async () => {
    const w = await world();
    w.replies['gone@remote.test'] = '550 5.1.1 no such user';
    const qm = await w.open();
    const alias = {
      address: 'team@example.test',
      params: {},
      mailboxes: [ADMIN],
      forwards: ['zed@remote.test', 'gone@remote.test'],
    };
    const env: Envelope = { ...envelope([]), recipients: [alias, { address: 'zed@remote.test', params: {}, mailboxes: [] }] };
    const id = await qm.accept(env, MESSAGE);
    await waitFor('the bounce', () => inbox(w.dir, ALICE).length === 1);
    await waitFor('the message to leave the queue', async () => (await w.store.queueGet(id)) === undefined);
    assert.equal(inbox(w.dir, ADMIN).length, 1, 'the alias\'s local mailbox has its copy');
    assert.deepEqual(w.sink.messages.flatMap((m) => m.recipients), ['zed@remote.test'], 'one copy for a target named twice');
    assert.equal(w.sink.messages[0]!.sender, ALICE, 'the envelope sender is kept (no SRS)');
    const gone = statusFields(inbox(w.dir, ALICE)[0]!).get('gone@remote.test')!;
    assert.equal(gone['Action'], 'failed');
    assert.equal(gone['Status'], '5.1.1');
    assert.equal(gone['Original-Recipient'], 'rfc822;team@example.test');
  });

  test('a bounce that cannot be delivered goes to the postmaster, and never back to <>', async () => {
    const w = await world();
    w.replies['gone@remote.test'] = '550 5.1.1 no such user';
    const qm = await w.open();
    // A DSN from elsewhere (null sender) that we relay onward, and which bounces.
    await qm.accept(envelope([{ address: 'gone@remote.test' }], ''), MESSAGE);
    await waitFor('the postmaster notice', () => inbox(w.dir, ADMIN).length === 1);
    const notice = inbox(w.dir, ADMIN)[0]!;
    assert.match(notice, /^Return-Path: <>\r\n/);
    assert.match(notice, /To: <admin@example\.test>/);
    assert.equal(statusFields(notice).get('gone@remote.test')!['Action'], 'failed');
    assert.equal(w.sink.messages.length, 0, 'nothing was sent to the null sender');
    assert.equal(inbox(w.dir, ALICE).length, 0);
  });

  test('after a restart, deferred recipients resume their schedule; finished ones are not repeated', async () => {
    const w = await world();
    w.replies['hank@remote.test'] = '450 4.2.0 mailbox busy';
    const first = await w.open({ retryBaseMs: 60_000, retryMaxMs: 60_000 });
    const id = await first.accept(envelope([{ address: 'hank@remote.test' }, { address: 'ivy@remote.test' }]), MESSAGE);
    await waitFor('the deferral', async () => (await w.store.queueGet(id))?.recipientStates?.[0]?.status === 'deferred');
    await first.close();
    const before = (await w.store.queueGet(id))!.recipientStates!;
    assert.deepEqual(before.map((r) => [r.status, r.attempts]), [['deferred', 1], ['delivered', 1]]);
    assert.deepEqual(w.sink.messages.flatMap((m) => m.recipients), ['ivy@remote.test']);

    w.replies['hank@remote.test'] = '250 ok';
    const second = await w.open();
    await sleep(300);
    assert.equal(w.sink.messages.length, 1, 'the stored retry time (a minute away) is kept');
    // An operator's retry brings it forward.
    await w.store.queueAddRequest('retry', id);
    await waitFor('delivery after the restart', () => second.stats.delivered === 1);
    assert.deepEqual(w.sink.messages.flatMap((m) => m.recipients), ['ivy@remote.test', 'hank@remote.test']);
    assert.deepEqual(await w.store.queueRequests(), [], 'the request was carried out');
  });

  test('hold, release and delete from the store take effect in the running queue', async () => {
    const w = await world();
    w.replies['ivan@remote.test'] = '450 4.2.0 mailbox busy';
    const qm = await w.open();
    const id = await qm.accept(envelope([{ address: 'ivan@remote.test' }]), MESSAGE);
    await waitFor('a deferral', async () => ((await w.store.queueGet(id))?.recipientStates?.[0]?.attempts ?? 0) >= 1);
    await w.store.queueAddRequest('hold', id);
    await waitFor('the hold', async () => (await w.store.queueGet(id))?.state === 'hold');
    // An attempt already under way when the hold came finishes; none starts after it. The store
    // write of its outcome is batched (a few ms), hence the short pause after.
    await waitFor('no attempt in flight', () => qm.stats.inFlight === 0);
    await sleep(100);
    const attempts = (await w.store.queueGet(id))!.recipientStates![0]!.attempts;
    w.replies['ivan@remote.test'] = '250 ok';
    await sleep(500);
    assert.equal(w.sink.messages.length, 0, 'no attempts while held');
    assert.equal((await w.store.queueGet(id))!.recipientStates![0]!.attempts, attempts);

    w.replies['ivan@remote.test'] = '450 4.2.0 still busy';
    await w.store.queueAddRequest('release', id);
    await waitFor('attempts again', async () => ((await w.store.queueGet(id))?.recipientStates?.[0]?.attempts ?? 0) > attempts);
    await w.store.queueAddRequest('delete', id);
    await waitFor('the deletion', async () => (await w.store.queueGet(id)) === undefined);
    await qm.close();
    const again = await w.open();
    await sleep(300);
    assert.equal(again.stats.accepted, 0);
    assert.equal(await w.store.queueGet(id), undefined, 'a deleted message does not come back after a restart');
    assert.equal(inbox(w.dir, ALICE).length, 0, 'deleting sends no bounce');
  });
});
