// The benchmark's second durable peer: nodemailer's smtp-server, the SMTP server most Node mail
// code is built on, made durable the simplest way: each message is written to its own file,
// fsync'd, and renamed into a Maildir-style new/ before the 250. It does nothing else (no queue,
// no DNS, no delivery), so it shows what one fsync per message costs a Node server, and what
// Postern's group commit and its queue must beat.
//
// Run as its own process, like the other servers: `node dist/bench/fsync-peer.js PORT DIR`; it
// prints "listening" once it accepts connections.

import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';

async function storeDurably(dir: string, message: Buffer): Promise<void> {
  const name = `${Date.now()}.${randomBytes(8).toString('hex')}.fsync-peer`;
  const tmp = join(dir, 'tmp', name);
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(message);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, join(dir, 'new', name));
}

function main(): void {
  const [portText, dir] = process.argv.slice(2);
  const port = Number(portText);
  if (!Number.isInteger(port) || dir === undefined) {
    console.error('usage: fsync-peer PORT DIR');
    process.exit(2);
  }
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  mkdirSync(join(dir, 'new'), { recursive: true });
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    // Its default looks up every client's reverse name before the greeting, which costs a
    // loopback client ~100 ms per connection here: off, so the peer is as fast as it can be.
    disableReverseLookup: true,
    // 100 sessions of smtp-source must all get in at once.
    maxClients: 10_000,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        storeDurably(dir, Buffer.concat(chunks)).then(
          () => callback(),
          (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
        );
      });
    },
  });
  server.on('error', (err) => console.error(`fsync-peer: ${err.message}`));
  server.listen(port, '127.0.0.1', () => console.log('listening'));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
