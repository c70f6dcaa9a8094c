import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { hasSharedReads, setReader, withSharedReads } from './shared-reads.js';

/** A server that accepts paused (as the listeners do) and hands each socket over with shared reads. */
async function listening(onSocket: (socket: net.Socket) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ pauseOnConnect: true }, (accepted) => onSocket(withSharedReads(accepted)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

describe('shared reads', () => {
  test('the reader gets every byte, the bytes are zeroed once it returns, and the close comes as usual', async () => {
    const received: Buffer[] = [];
    const views: Buffer[] = [];
    let serverSide: net.Socket | undefined;
    const { server, port } = await listening((socket) => {
      serverSide = socket;
      assert.ok(hasSharedReads(socket));
      setReader(socket, (data) => {
        received.push(Buffer.from(data));
        views.push(data);
      });
      socket.resume();
    });
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    const payload = Buffer.alloc(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = 1 + (i % 251);
    client.end(payload);
    await once(client, 'close');
    assert.ok(serverSide);
    if (!serverSide.closed) await once(serverSide, 'close');
    assert.deepEqual(Buffer.concat(received), payload);
    assert.ok(views.length > 1);
    for (const view of views) assert.ok(view.every((b) => b === 0), 'a view of the shared buffer outlived its call');
    // The server counted the connection down: close() completes.
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });

  test('pause() stops the reads and resume() starts them again; with no reader the bytes are dropped', async () => {
    const received: string[] = [];
    let serverSide: net.Socket | undefined;
    const { server, port } = await listening((socket) => {
      serverSide = socket;
      socket.resume();
    });
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    while (serverSide === undefined) await new Promise((r) => setTimeout(r, 5));
    const socket = serverSide;
    client.write('dropped');
    await new Promise((r) => setTimeout(r, 50));
    setReader(socket, (data) => received.push(data.toString()));
    socket.pause();
    client.write('held');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(received, []);
    socket.resume();
    while (received.join('') !== 'held') await new Promise((r) => setTimeout(r, 5));
    client.destroy();
    socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('replies go out through the new socket', async () => {
    const { server, port } = await listening((socket) => {
      setReader(socket, (data) => socket.write(`echo ${data.toString()}`));
      socket.resume();
    });
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    client.write('hi');
    const [reply] = (await once(client, 'data')) as [Buffer];
    assert.equal(reply.toString(), 'echo hi');
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
