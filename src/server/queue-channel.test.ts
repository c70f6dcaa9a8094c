import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serialize } from 'node:v8';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { FrameReader, QueueChannelClient, QueueChannelServer, queueChannelPath } from './queue-channel.js';
import type { QueueCall, QueueResult } from './worker-protocol.js';

const logger = pino({ level: 'silent' });

function frame(value: unknown): Buffer {
  const body = serialize(value);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

describe('FrameReader', () => {
  const frames = [{ id: 1, body: Buffer.alloc(70_000, 7) }, { id: 2 }, { id: 3, text: 'é\r\n.\r\n' }];
  const stream = Buffer.concat(frames.map(frame));

  for (const size of [1, 3, 17, 65_536, stream.length]) {
    test(`reads the same frames from ${size}-byte fragments`, () => {
      const seen: unknown[] = [];
      const reader = new FrameReader((v) => seen.push(v));
      for (let i = 0; i < stream.length; i += size) reader.push(stream.subarray(i, i + size));
      assert.deepEqual(seen, frames);
      // A body comes back a Buffer, not a plain Uint8Array.
      assert.ok(Buffer.isBuffer((seen[0] as { body: unknown }).body));
    });
  }

  test('a frame that is not v8 serialization throws, for the connection to be closed', () => {
    const reader = new FrameReader(() => assert.fail('no frame expected'));
    const bogus = Buffer.from([0, 0, 0, 3, 0x41, 0x42, 0x43]);
    assert.throws(() => reader.push(bogus));
  });
});

describe('the queue channel over its Unix socket', () => {
  const root = mkdtempSync(join(tmpdir(), 'postern-channel-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  const accept = (id: string): QueueCall => ({
    method: 'accept',
    envelope: { sender: 'a@b.test', mailParams: {}, recipients: [], arrival: { clientIp: '127.0.0.1', clientPort: 1, helo: 'h', protocol: 'ESMTP' } } as never,
    message: Buffer.from(`Subject: ${id}\r\n\r\nbody\r\n`),
    recordAuthUser: false,
  });
  const echo = async (call: QueueCall): Promise<QueueResult> =>
    call.method === 'accept' ? { ok: true, queueId: call.message.toString('latin1').split('\r\n')[0]!.slice(9) } : { ok: true };

  test('answers calls, many in one tick, each to its caller', async () => {
    const path = queueChannelPath(join(root, 'a'));
    mkdirSync(join(root, 'a'));
    const server = await QueueChannelServer.listen(path, echo, logger);
    const client = new QueueChannelClient(path);
    try {
      const ids = Array.from({ length: 100 }, (_, i) => `m${i}`);
      const results = await Promise.all(ids.map((id) => client.call(accept(id))));
      assert.deepEqual(results.map((r) => (r.ok ? r.queueId : 'failed')), ids);
      // Only the service account may enter the directory.
      assert.equal(statSync(join(path, '..')).mode & 0o777, 0o700);
    } finally {
      client.close();
      await server.close();
    }
  });

  test('a call outstanding when the queue owner goes fails; the next call reaches the next owner', async () => {
    const path = queueChannelPath(join(root, 'b'));
    mkdirSync(join(root, 'b'));
    let hold: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (hold = resolve));
    let received: (() => void) | undefined;
    const arrived = new Promise<void>((resolve) => (received = resolve));
    const first = await QueueChannelServer.listen(
      path,
      async (call) => {
        received?.();
        await held;
        return echo(call);
      },
      logger,
    );
    const client = new QueueChannelClient(path);
    try {
      const outstanding = client.call(accept('lost'));
      await arrived;
      await first.close();
      assert.deepEqual(await outstanding, { ok: false, failed: undefined });
      // Nobody listens now: refused at once, not left waiting.
      assert.deepEqual(await client.call(accept('refused')), { ok: false, failed: undefined });
      // A killed owner leaves its socket file behind (close() removed this one): the next removes it.
      execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
      const second = await QueueChannelServer.listen(path, echo, logger);
      try {
        assert.deepEqual(await client.call(accept('again')), { ok: true, queueId: 'again' });
      } finally {
        await second.close();
      }
    } finally {
      hold?.();
      client.close();
    }
  });

  test('a data_dir too long for a socket path stops the start with the fix', async () => {
    const path = queueChannelPath(join(root, 'x'.repeat(120)));
    await assert.rejects(QueueChannelServer.listen(path, echo, logger), /data_dir is too long .* choose a shorter data_dir/);
  });
});
