import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { pino } from 'pino';
import { configSchema } from '../config/schema.js';
import { Listeners } from './listeners.js';
import { StartupError } from '../util/startup-error.js';

const logger = pino({ level: 'silent' });
const listenOnly = (mx: string[], submission: string[] = [], submissions: string[] = []) =>
  configSchema.parse({ listen: { mx, submission, submissions, pop3: [], pop3s: [], http: [], https: [], metrics: [] } }).listen;

test('binds every address on ephemeral ports and reports them', async () => {
  const l = await Listeners.bind(listenOnly(['127.0.0.1:0'], ['127.0.0.1:0'], ['127.0.0.1:0']), logger);
  try {
    assert.deepEqual(
      l.bound.map((b) => [b.kind, b.address]),
      [
        ['mx', '127.0.0.1'],
        ['submission', '127.0.0.1'],
        ['submissions', '127.0.0.1'],
      ],
    );
    for (const b of l.bound) assert.ok(b.port > 0);
  } finally {
    l.close();
  }
});

test('an address in use is one line that says which and what to change', async () => {
  const other = net.createServer();
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  const port = (other.address() as net.AddressInfo).port;
  try {
    await assert.rejects(Listeners.bind(listenOnly([], [`127.0.0.1:${port}`]), logger), (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.equal(
        err.message,
        `cannot listen on 127.0.0.1:${port}: address already in use (another server running? change [listen] submission in the config)`,
      );
      return true;
    });
  } finally {
    other.close();
  }
});

test('connections that arrive before accept() are held, unread, and then handed on', async () => {
  const l = await Listeners.bind(listenOnly(['127.0.0.1:0']), logger);
  const port = l.bound[0]!.port;
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  client.write('EHLO early\r\n');
  const got = await new Promise<string>((resolve) => {
    l.accept((socket, kind) => {
      socket.once('data', (d: Buffer) => {
        resolve(`${kind}:${d.toString()}`);
        socket.destroy();
      });
      socket.resume();
    });
  });
  assert.equal(got, 'mx:EHLO early\r\n');
  client.destroy();
  l.close();
});

test('"[::]:port" leaves the IPv4 side of the port free for "0.0.0.0:port"', async (t) => {
  let l: Listeners;
  try {
    l = await Listeners.bind(listenOnly(['[::]:0']), logger);
  } catch {
    t.skip('no IPv6 on this host');
    return;
  }
  const port = l.bound[0]!.port;
  assert.equal(l.bound[0]!.address, '::');
  const v4 = await Listeners.bind(listenOnly([`0.0.0.0:${port}`]), logger);
  assert.equal(v4.bound[0]!.port, port);
  v4.close();
  l.close();
});
