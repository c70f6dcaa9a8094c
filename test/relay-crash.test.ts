// Crash safety of outbound mail: Postern is killed with SIGKILL while its deliveries are in
// flight (the peer has the whole message but has not answered the final dot). After a restart
// every message is delivered: at least once, none lost (RFC 5321 section 6.1: once we said 250,
// the message is ours to deliver).

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from './support/dns-server.js';
import { TestPostfix } from './support/postfix.js';
import type { PosternInstance, PosternProcess } from './support/postern-process.js';
import { LOCAL_DOMAIN, marker, relayInstance, submit } from './support/relay-world.js';

const ALICE = `alice@${LOCAL_DOMAIN}`;
const MESSAGES = 4;

/**
 * An MX that takes the whole message and then never answers the final dot: each delivery
 * stays in flight until the sender gives up or dies.
 */
class StallingMx {
  /** Messages whose data ended (the final dot arrived). */
  stalled = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(host: string, port: number): Promise<StallingMx> {
    let mx: StallingMx | undefined;
    const server = createServer((socket) => mx!.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    mx = new StallingMx(server);
    return mx;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write('220 mx.stall.test ESMTP\r\n');
    let buffered = '';
    let inData = false;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (;;) {
        if (inData) {
          const end = buffered.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buffered = buffered.slice(end + 5);
          inData = false;
          this.stalled++;
          return; // and never answer
        }
        const eol = buffered.indexOf('\r\n');
        if (eol < 0) return;
        const line = buffered.slice(0, eol).toUpperCase();
        buffered = buffered.slice(eol + 2);
        if (line.startsWith('EHLO')) socket.write('250-mx.stall.test\r\n250 PIPELINING\r\n');
        else if (line.startsWith('DATA')) {
          socket.write('354 go ahead\r\n');
          inData = true;
        } else if (line.startsWith('QUIT')) socket.end('221 bye\r\n');
        else socket.write('250 ok\r\n');
      }
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('SIGKILL in the middle of remote deliveries', { skip: TestPostfix.available() }, () => {
  let dns: TestDnsServer;
  let postfix: TestPostfix;
  let stalling: StallingMx;
  let instance: PosternInstance;
  let server: PosternProcess | undefined;

  before(async () => {
    dns = await TestDnsServer.start();
    postfix = await TestPostfix.start({ domains: ['far.test'], hostname: 'mx.far.test' });
    stalling = await StallingMx.start('127.0.0.3', postfix.port);
    dns.set('far.test', [{ type: 'MX', preference: 10, exchange: 'mx.far.test' }]);
    // First the MX that stalls; after the crash the name points at Postfix.
    dns.set('mx.far.test', [{ type: 'A', address: '127.0.0.3' }]);
    instance = await relayInstance({ dns, users: [ALICE], relay: { mx_port: postfix.port } });
  });

  after(async () => {
    await server?.kill();
    await instance?.dispose();
    await stalling?.close();
    await postfix?.stop();
    await dns?.close();
  });

  test('every message is delivered after a restart', async () => {
    server = await instance.start();
    const markers = Array.from({ length: MESSAGES }, (_, i) => marker(`crash-${i}`));
    for (const m of markers) await submit(server.port('submission'), { from: ALICE, to: [`bob@far.test`], marker: m });
    // Wait until the peer holds at least one whole message that it has not acknowledged.
    const deadline = Date.now() + 20_000;
    while (stalling.stalled === 0) {
      if (Date.now() > deadline) throw new Error(`no delivery reached the stalling MX\n${server.log()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await server.kill();

    dns.set('mx.far.test', [{ type: 'A', address: '127.0.0.1' }]);
    server = await instance.start();
    for (const m of markers) await postfix.waitForMessage(m);
    const delivered = postfix.readMaildir();
    for (const m of markers) {
      assert.ok(delivered.filter((msg) => msg.text.includes(m)).length >= 1, `${m} was delivered`);
    }
    assert.equal(instance.readMaildir(ALICE).length, 0, 'no bounce');
  });
});
