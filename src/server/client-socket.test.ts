import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { ClientSocket } from './client-socket.js';
import type { HandshakeCertificates } from '../tls/tls-handshake.js';

/** The smallest connection: what the tests say goes out as a reply. */
class Speaker extends ClientSocket {
  readonly listener = 'test';

  constructor(accepted: net.Socket) {
    super(accepted, '127.0.0.1', 0, { certificates: {} as HandshakeCertificates, handshakeTimeoutMs: 1_000, logger: pino({ level: 'silent' }) }, true);
    this.attach(this.socket);
  }

  say(reply: string): void {
    this.sendReply(reply);
  }

  get bytesWritten(): number {
    return this.socket.bytesWritten;
  }

  protected received(): void {}
  protected hungUp(): void {}
  protected finish(): void {
    this.finished = true;
    this.clearLinger();
  }
  protected pauseTimers(): void {}
  protected resumeTimers(): void {}
}

/** `count` client connections and their server sides, paired in order. */
async function pairs(count: number): Promise<{ server: net.Server; clients: net.Socket[]; speakers: Speaker[] }> {
  const speakers: Speaker[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (accepted) => speakers.push(new Speaker(accepted)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const clients: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    while (speakers.length <= i) await new Promise((r) => setTimeout(r, 2));
    clients.push(client);
  }
  return { server, clients, speakers };
}

/** Everything the client reads until the server side ends the connection. */
async function readToEnd(client: net.Socket): Promise<string> {
  let text = '';
  client.on('data', (chunk: Buffer) => (text += chunk.toString()));
  await once(client, 'end');
  return text;
}

async function closeAll(server: net.Server, clients: net.Socket[]): Promise<void> {
  for (const client of clients) client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('client socket replies', () => {
  test('the replies of one turn go out together after it, each connection its own in order', async () => {
    const { server, clients, speakers } = await pairs(2);
    const [a, b] = speakers as [Speaker, Speaker];
    const readA = readToEnd(clients[0] as net.Socket);
    const readB = readToEnd(clients[1] as net.Socket);
    a.say('250 first\r\n');
    b.say('250 other\r\n');
    a.say('250 second\r\n');
    // Nothing was handed to either socket while the turn ran.
    assert.equal(a.bytesWritten, 0);
    assert.equal(b.bytesWritten, 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(a.bytesWritten, '250 first\r\n250 second\r\n'.length);
    assert.equal(b.bytesWritten, '250 other\r\n'.length);
    // A later turn's reply follows the earlier ones.
    a.say('221 bye\r\n');
    await new Promise((r) => setImmediate(r));
    a.close();
    b.close();
    assert.equal(await readA, '250 first\r\n250 second\r\n221 bye\r\n');
    assert.equal(await readB, '250 other\r\n');
    await closeAll(server, clients);
  });

  test('close() and destroy() hand the queued replies over first', async () => {
    const { server, clients, speakers } = await pairs(2);
    const [a, b] = speakers as [Speaker, Speaker];
    const readA = readToEnd(clients[0] as net.Socket);
    let readB = '';
    (clients[1] as net.Socket).on('data', (chunk: Buffer) => (readB += chunk.toString()));
    const closedB = once(clients[1] as net.Socket, 'close');
    a.say('221 2.0.0 Bye\r\n');
    a.close();
    b.say('421 4.3.2 Shutting down\r\n');
    b.destroy();
    assert.equal(await readA, '221 2.0.0 Bye\r\n');
    await closedB;
    assert.equal(readB, '421 4.3.2 Shutting down\r\n');
    await closeAll(server, clients);
  });
});
