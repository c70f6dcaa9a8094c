import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { SmtpSink, type SinkOptions } from '../../../test/support/smtp-sink.js';
import type { CourierJob, CourierRecipient, DeliveryOutcome } from '../../queue/courier.js';
import { LmtpCourier, type LmtpCourierOptions } from './lmtp-courier.js';

const logger = pino({ level: 'silent' });
const TIMEOUTS = { connectMs: 5000, greetingMs: 5000, mailMs: 5000, rcptMs: 5000, dataInitMs: 5000, dataBlockMs: 5000, dataFinalMs: 5000 };
const dir = mkdtempSync(join(tmpdir(), 'postern-lmtp-courier-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let sockets = 0;

async function world(opts: SinkOptions = {}, courier: Partial<LmtpCourierOptions> = {}): Promise<{ sink: SmtpSink; courier: LmtpCourier; close(): Promise<void> }> {
  const path = join(dir, `lmtp-${++sockets}`);
  const sink = await SmtpSink.startUnix({ lmtp: true, ...opts }, path);
  const c = new LmtpCourier({ endpoint: { kind: 'unix', path }, lhloName: 'mx.local.test', logger, timeouts: TIMEOUTS, ...courier });
  return {
    sink,
    courier: c,
    close: async () => {
      await c.close();
      await sink.close();
    },
  };
}

/** An LMTP "server" on a Unix socket that takes connections and never sends its greeting. */
async function silentServer(): Promise<{ path: string; connections: () => number; closed: () => number; close(): Promise<void> }> {
  const path = join(dir, `silent-${++sockets}`);
  let connections = 0;
  let closed = 0;
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    connections++;
    open.add(socket);
    socket.resume();
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed++;
      open.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    connections: () => connections,
    closed: () => closed,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function rcpt(address: string, mailboxes: string[] = [address]): CourierRecipient {
  return { address, mailboxes };
}

function job(recipients: CourierRecipient[], alreadyDelivered: string[] = []): CourierJob {
  return {
    queueId: 'Q1',
    sender: 'someone@origin.test',
    mailParams: {},
    recipients,
    domain: 'mx.local.test',
    message: Buffer.from('Subject: hello\r\n\r\nHi.\r\n'),
    alreadyDelivered: new Set(alreadyDelivered),
  };
}

function kinds(outcomes: DeliveryOutcome[]): string[] {
  return outcomes.map((o) => o.kind);
}

describe('LmtpCourier', () => {
  test('each mailbox once; a recipient is deferred while one of its mailboxes is, and names the ones delivered', async () => {
    const w = await world({ dataReplies: { 'bob@local.test': '452 4.2.2 Mailbox full', 'eve@local.test': '550 5.2.1 Mailbox disabled' } });
    try {
      // team@ is an alias for alice and bob; alice is also a recipient of her own.
      const outcomes = await w.courier.deliver(
        job([rcpt('team@local.test', ['alice@local.test', 'bob@local.test']), rcpt('alice@local.test'), rcpt('eve@local.test')]),
      );
      assert.deepEqual(kinds(outcomes), ['deferred', 'delivered', 'failed']);
      const [team, alice, eve] = outcomes;
      assert.deepEqual(team?.kind === 'deferred' && team.mailboxes, ['alice@local.test']);
      assert.match(team?.kind === 'deferred' ? team.reason : '', /452 4\.2\.2 Mailbox full \(mailbox bob@local\.test\)$/);
      assert.deepEqual(alice?.kind === 'delivered' && alice.mailboxes, ['alice@local.test']);
      assert.equal(eve?.kind === 'failed' && eve.status, '5.2.1');
      assert.equal(eve?.remoteHost, `unix:${join(dir, `lmtp-${sockets}`)}`);
      assert.deepEqual(w.sink.messages[0]?.recipients, ['alice@local.test', 'bob@local.test', 'eve@local.test']);
    } finally {
      await w.close();
    }
  });

  test('a mailbox delivered in an earlier attempt is never sent again', async () => {
    const w = await world();
    try {
      const outcomes = await w.courier.deliver(job([rcpt('team@local.test', ['alice@local.test', 'bob@local.test'])], ['alice@local.test']));
      assert.deepEqual(kinds(outcomes), ['delivered']);
      assert.deepEqual(outcomes[0]?.kind === 'delivered' && outcomes[0].mailboxes, ['bob@local.test']);
      assert.deepEqual(w.sink.messages.map((m) => m.recipients), [['bob@local.test']]);
      // Nothing left to send: no session at all.
      const again = await w.courier.deliver(job([rcpt('alice@local.test')], ['alice@local.test']));
      assert.deepEqual(kinds(again), ['delivered']);
      assert.equal(w.sink.messages.length, 1);
    } finally {
      await w.close();
    }
  });

  test('the session is kept for the next job (no RSET after a completed one), and QUIT after the idle time', async () => {
    const w = await world({}, { idleMs: 300 });
    try {
      for (const who of ['a', 'b', 'c']) assert.deepEqual(kinds(await w.courier.deliver(job([rcpt(`${who}@local.test`)]))), ['delivered']);
      assert.equal(w.sink.connections, 1);
      assert.equal(w.sink.commands.filter((c) => c === 'RSET').length, 0);
      assert.ok(w.sink.messages.every((m) => m.dataWithEnvelope), 'an LMTP server offers PIPELINING (RFC 2033): DATA goes with the envelope');
      assert.equal(new Set(w.sink.messages.map((m) => m.connection)).size, 1);
      await sleep(600);
      assert.ok(w.sink.commands.includes('QUIT'), 'an idle session is closed with QUIT');
      await w.courier.deliver(job([rcpt('d@local.test')]));
      assert.equal(w.sink.connections, 2);
    } finally {
      await w.close();
    }
  });

  test('a kept session the server closed is replaced at once, without deferring the job', async () => {
    const w = await world();
    try {
      await w.courier.deliver(job([rcpt('a@local.test')]));
      // Before the client can notice: its MAIL on the kept session is what finds it gone.
      w.sink.dropConnections();
      const outcomes = await w.courier.deliver(job([rcpt('b@local.test')]));
      assert.deepEqual(kinds(outcomes), ['delivered']);
      assert.equal(w.sink.connections, 2);
      assert.deepEqual(w.sink.messages.map((m) => m.delivered), [['a@local.test'], ['b@local.test']]);
    } finally {
      await w.close();
    }
  });

  test('a kept session the server closes with 421 at MAIL is replaced at once, without deferring the job', async () => {
    const w = await world({ closeAfterMessages: 1 });
    try {
      assert.deepEqual(kinds(await w.courier.deliver(job([rcpt('a@local.test')]))), ['delivered']);
      assert.deepEqual(kinds(await w.courier.deliver(job([rcpt('b@local.test')]))), ['delivered']);
      assert.deepEqual(w.sink.messages.map((m) => m.connection), [1, 2]);
    } finally {
      await w.close();
    }
  });

  test('a lost session after the dot defers only the recipients without a reply', async () => {
    const w = await world({ dropAfterReplies: 1 });
    try {
      const outcomes = await w.courier.deliver(job([rcpt('a@local.test'), rcpt('b@local.test')]));
      assert.deepEqual(kinds(outcomes), ['delivered', 'deferred']);
      assert.match(outcomes[1]?.kind === 'deferred' ? outcomes[1].reason : '', /gave no reply for the recipient/);
    } finally {
      await w.close();
    }
  });

  test('no server, or one that greets with 421: every recipient deferred with the reason', async () => {
    const w = await world({ greeting: '421 4.3.2 Too busy' });
    const none = new LmtpCourier({ endpoint: { kind: 'unix', path: join(dir, 'absent') }, lhloName: 'mx.local.test', logger, timeouts: TIMEOUTS });
    try {
      const busy = await w.courier.deliver(job([rcpt('a@local.test'), rcpt('b@local.test')]));
      assert.deepEqual(kinds(busy), ['deferred', 'deferred']);
      assert.equal(busy[0]?.reply?.code, 421);
      const absent = await none.deliver(job([rcpt('a@local.test')]));
      assert.deepEqual(kinds(absent), ['deferred']);
      assert.match(absent[0]?.kind === 'deferred' ? absent[0].reason : '', /cannot connect to unix:.*absent/);
    } finally {
      await none.close();
      await w.close();
    }
  });

  test('abort() cuts a session waiting for the greeting: deferred, and no session is opened after it', async () => {
    const silent = await silentServer();
    // A greeting timeout far beyond the test: only abort() can end the wait.
    const c = new LmtpCourier({ endpoint: { kind: 'unix', path: silent.path }, lhloName: 'mx.local.test', logger, timeouts: { ...TIMEOUTS, greetingMs: 600_000 } });
    try {
      const pending = c.deliver(job([rcpt('a@local.test'), rcpt('b@local.test')]));
      while (silent.connections() === 0) await sleep(5);
      c.abort();
      const outcomes = await pending;
      assert.deepEqual(kinds(outcomes), ['deferred', 'deferred']);
      assert.match(outcomes[0]?.kind === 'deferred' ? outcomes[0].reason : '', /cut: Postern is shutting down/);
      while (silent.closed() === 0) await sleep(5);
      const later = await c.deliver(job([rcpt('a@local.test')]));
      assert.deepEqual(kinds(later), ['deferred']);
      assert.equal(silent.connections(), 1, 'no new session after abort()');
    } finally {
      await c.close();
      await silent.close();
    }
  });
});
