// SIGTERM while a delivery waits on a peer that took the connection and never says a word: an
// LMTP server, or a remote MX, that sends no greeting. Our client would wait for it up to the
// RFC 5321 4.5.3.2.1 greeting timeout (5 minutes); the stop must not. The real server (child
// process) delivers to a silent loopback peer; SIGTERM must end it with exit 0 long before that
// timeout, with the message still in the queue (not delivered, not lost). Restarted against a
// peer that answers (the scripted sink of test/support), it delivers the message exactly once.

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from './support/dns-server.js';
import type { PosternInstance } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, relayInstance, submit } from './support/relay-world.js';
import { SmtpSink, type SinkMessage } from './support/smtp-sink.js';
import { waitFor } from './support/wait-for.js';

const ALICE = `alice@${LOCAL_DOMAIN}`;
const BOB = `bob@${LOCAL_DOMAIN}`;
const FAR = 'carol@far.test';

/**
 * A hang detector, not a timing assertion: well under the 5-minute greeting timeout, well over
 * the queue's 10 s grace for running deliveries (QueueManager closeTimeoutMs) on a busy machine.
 */
const STOP_BOUND_MS = 30_000;

/** Accepts connections and never writes a byte: no greeting, no reply. */
class SilentPeer {
  connections = 0;
  /** Connections that the client ended. */
  closed = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(host: string, port = 0): Promise<SilentPeer> {
    let peer: SilentPeer | undefined;
    const server = createServer((socket) => peer!.take(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    peer = new SilentPeer(server);
    return peer;
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
    return address.port;
  }

  private take(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed++;
      this.sockets.delete(socket);
    });
    socket.resume(); // read and ignore whatever the client sends
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The transactions that carried the message with this marker and were accepted for `address`. */
function deliveredTo(sink: SmtpSink, m: string, address: string): SinkMessage[] {
  return sink.messages.filter((msg) => msg.data.toString('latin1').includes(m) && msg.delivered.includes(address));
}

interface ListedMessage {
  readonly id: string;
  readonly recipients: readonly { readonly address: string; readonly status: string }[];
}

async function queued(instance: PosternInstance): Promise<ListedMessage[]> {
  return JSON.parse(await instance.cliOk(['queue', 'list', '--json'])) as ListedMessage[];
}

/**
 * Submits a message to `to`, waits until the silent peer holds Postern's connection, and stops
 * the server; asserts the stop was clean and prompt, the peer's connection was cut, and the
 * message is still queued for `to`.
 */
async function stopWhileSilent(instance: PosternInstance, silent: SilentPeer, to: string, m: string): Promise<void> {
  const server = await instance.start();
  let stopped = false;
  try {
    await submit(server.port('submission'), { from: ALICE, to: [to], marker: m });
    await waitFor(() => (silent.connections > 0 ? true : undefined));
    const code = await server.stop(STOP_BOUND_MS);
    stopped = true;
    assert.equal(code, 0, `SIGTERM must stop the server with exit code 0\n${server.log()}`);
    const attempt = await server.waitForLog((e) => /delivery attempt$/.test(String(e.msg)) && e.recipient === to, 0);
    assert.equal(attempt.status, 'deferred', 'the attempt cut at shutdown is not done');
    assert.match(String(attempt.reason), /shutting down/);
  } finally {
    if (!stopped) await server.kill();
  }
  await waitFor(() => (silent.closed === silent.connections ? true : undefined));
  const left = (await queued(instance)).flatMap((msg) => msg.recipients.filter((r) => r.address === to));
  assert.equal(left.length, 1, 'the message is still in the queue');
  assert.notEqual(left[0]?.status, 'delivered');
}

/** Restarts against the answering sink: the message arrives once, and leaves the queue. */
async function deliveredOnceAfterRestart(instance: PosternInstance, sink: SmtpSink, to: string, m: string): Promise<void> {
  const server = await instance.start();
  try {
    await server.waitForLog((e) => e.msg === 'message finished' && Array.isArray(e.delivered) && e.delivered.includes(to));
  } finally {
    assert.equal(await server.stop(), 0, `SIGTERM must stop the server with exit code 0\n${server.log()}`);
  }
  assert.equal(deliveredTo(sink, m, to).length, 1, 'delivered exactly once');
  assert.deepEqual(await queued(instance), [], 'nothing left in the queue');
}

describe('SIGTERM while an LMTP server never greets', () => {
  let dns: TestDnsServer;
  let silent: SilentPeer | undefined;
  let lmtp: SmtpSink | undefined;
  let instance: PosternInstance;

  before(async () => {
    dns = await TestDnsServer.start();
    silent = await SilentPeer.start('127.0.0.1');
    instance = await relayInstance({ dns, users: [ALICE, BOB], extra: { delivery: { lmtp: `127.0.0.1:${silent.port}` } } });
  });

  after(async () => {
    await instance?.dispose();
    await silent?.close();
    await lmtp?.close();
    await dns?.close();
  });

  test('the stop cuts the session; after the restart the message is delivered once', async () => {
    const m = marker('lmtp-silent');
    await stopWhileSilent(instance, silent!, BOB, m);
    const port = silent!.port;
    await silent!.close();
    silent = undefined;
    lmtp = await SmtpSink.start({ lmtp: true, name: 'lmtp.postern.test' }, '127.0.0.1', port);
    await deliveredOnceAfterRestart(instance, lmtp, BOB, m);
  });
});

describe('SIGTERM while a remote MX never greets', () => {
  let dns: TestDnsServer;
  let silent: SilentPeer | undefined;
  let mx: SmtpSink | undefined;
  let instance: PosternInstance;

  before(async () => {
    dns = await TestDnsServer.start();
    silent = await SilentPeer.start('127.0.0.1');
    dns.set('far.test', [{ type: 'MX', preference: 10, exchange: 'mx.far.test' }]);
    dns.set('mx.far.test', [{ type: 'A', address: '127.0.0.1' }]);
    instance = await relayInstance({ dns, users: [ALICE], relay: { mx_port: silent.port, mta_sts: { enabled: false } } });
  });

  after(async () => {
    await instance?.dispose();
    await silent?.close();
    await mx?.close();
    await dns?.close();
  });

  test('the stop cuts the session; after the restart the message is delivered once', async () => {
    const m = marker('mx-silent');
    await stopWhileSilent(instance, silent!, FAR, m);
    const port = silent!.port;
    await silent!.close();
    silent = undefined;
    mx = await SmtpSink.start({ name: 'mx.far.test' }, '127.0.0.1', port);
    await deliveredOnceAfterRestart(instance, mx, FAR, m);
  });
});
