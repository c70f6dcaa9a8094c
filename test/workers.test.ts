// End to end: `postern serve` with several worker processes (src/server/workers.ts). Connections
// are served by more than one session worker; the children run as the service account while the
// primary keeps root to re-read a root-only key; SIGKILL of a worker under load loses no message
// that got its 250, and the worker is started again, with the AUTH lockouts and client message
// rates in force; stopping the primary leaves no child behind.

import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'smol-toml';
import { makeCertificate, type TestCertificate } from './support/test-certificate.js';
import { SmtpClient } from './support/smtp-client.js';
import { delay, PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';

const asRoot = process.getuid?.() === 0;

/** The children of `pid`, from /proc: the primary's workers. */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (new RegExp(`^PPid:\\s+${pid}$`, 'm').test(status)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** The real, effective, saved and file-system uids, then gids, then the supplementary groups. */
function idsOf(pid: number): { uids: number[]; gids: number[]; groups: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const numbers = (key: string): number[] => (new RegExp(`^${key}:(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  return { uids: numbers('Uid'), gids: numbers('Gid'), groups: numbers('Groups') };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function presentedCn(port: number): Promise<string> {
  const client = await SmtpClient.open(port);
  await client.command('STARTTLS', 220);
  const socket = await client.startTls({ servername: 'mx.postern.test' });
  const cn = String(socket.getPeerCertificate().subject?.CN);
  await client.quit();
  return cn;
}


/** STARTTLS, then AUTH PLAIN for alice with a wrong password on a greeted session; the reply to AUTH. */
async function wrongPassword(client: SmtpClient): Promise<string> {
  await client.command('STARTTLS', 220);
  await client.startTls();
  await client.command('EHLO client.remote.test', 250);
  const reply = await client.command(`AUTH PLAIN ${Buffer.from('\0alice@postern.test\0wrong').toString('base64')}`);
  await client.quit();
  return reply.raw;
}

describe('several worker processes', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let keyDir: string;
  let renewed: TestCertificate;

  before(async () => {
    const [first, second] = await Promise.all([makeCertificate('first', ['mx.postern.test']), makeCertificate('renewed', ['mx.postern.test'])]);
    renewed = second;
    instance = new PosternInstance({
      hostname: 'mx.postern.test',
      workers: 2,
      // 127.0.0.1 stays exempt (the load below); the message-rate test comes from 127.0.0.50.
      limits: { trusted_networks: ['127.0.0.1/32'], client_message_rate: 2 },
    });
    // Root-only, like /etc/letsencrypt/live: the service account cannot read the key.
    keyDir = join(instance.root, 'keys');
    mkdirSync(keyDir, { mode: 0o700 });
    writeFileSync(join(keyDir, 'key.pem'), first.key, { mode: 0o600 });
    writeFileSync(join(keyDir, 'cert.pem'), first.cert, { mode: 0o600 });
    appendFileSync(instance.configPath, `\n${stringify({
      tls: { cert: join(keyDir, 'cert.pem'), key: join(keyDir, 'key.pem') },
      auth: { throttle: { ip_max_failures: 3, delay_ms: 10, max_delay_ms: 20 } },
      submission: { max_messages_per_hour: 2 },
    })}\n`);
    await instance.cliOk(['domain', 'add', 'postern.test']);
    await instance.addUser('alice@postern.test');
    server = await instance.start();
  });

  after(() => stopAndDispose(server, instance));

  test('connections are served by more than one session worker', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => SmtpClient.open(server.port())));
    await Promise.all(clients.map((c) => c.quit()));
    const workers = new Set<unknown>();
    for (let i = 0; i < 4; i++) {
      const entry = await server.waitForLog((e) => e.msg === 'connection' && e.listener === 'mx' && !workers.has(e.worker) && e.worker !== undefined);
      workers.add(entry.worker);
      if (workers.size >= 2) break;
    }
    assert.ok(workers.size >= 2, `one worker served every connection: ${[...workers].join(', ')}`);
  });

  test('the queue owner and session workers run as the service account, the primary as root', { skip: !asRoot && 'needs root' }, () => {
    const children = childrenOf(server.pid);
    assert.equal(children.length, 3, `expected the queue owner and 2 session workers, found ${children.length}`);
    assert.equal(idsOf(server.pid).uids[0], 0);
    for (const pid of children) {
      const { uids, gids, groups } = idsOf(pid);
      // Not one of them root's, saved ids and root's supplementary groups included.
      assert.ok(uids.length === 4 && uids.every((id) => id !== 0), `worker ${pid} has uids ${uids.join(' ')}`);
      assert.ok(gids.length === 4 && gids.every((id) => id !== 0), `worker ${pid} has gids ${gids.join(' ')}`);
      assert.ok(!groups.includes(0), `worker ${pid} keeps group 0`);
    }
  });

  test('a root-only key is re-read on SIGHUP and new connections present the new certificate', { skip: !asRoot && 'needs root' }, async () => {
    assert.equal(await presentedCn(server.port()), 'first');
    writeFileSync(join(keyDir, 'key.pem'), renewed.key, { mode: 0o600 });
    writeFileSync(join(keyDir, 'cert.pem'), renewed.cert, { mode: 0o600 });
    chmodSync(join(keyDir, 'key.pem'), 0o600);
    process.kill(server.pid, 'SIGHUP');
    await server.waitForLog((e) => e.msg === 'TLS certificates reloaded');
    // Both workers: two connections at once go to different ones.
    const seen = await Promise.all([presentedCn(server.port()), presentedCn(server.port())]);
    assert.deepEqual(seen, ['renewed', 'renewed']);
  });

  test('an account\'s message count is the whole server\'s, not one worker\'s', async () => {
    const submit = async (): Promise<number> => {
      const client = await SmtpClient.open(server.port('submission'));
      await client.command('STARTTLS', 220);
      await client.startTls();
      await client.command('EHLO client.remote.test', 250);
      await client.command(`AUTH PLAIN ${Buffer.from('\0alice@postern.test\0correct horse battery staple').toString('base64')}`, 235);
      const reply = await client.sendMail('alice@postern.test', ['alice@postern.test'], 'From: alice@postern.test\r\nSubject: counted\r\n\r\ncounted\r\n');
      await client.quit();
      if (reply.code !== 250 && reply.code !== 450) assert.fail(reply.raw);
      return reply.code;
    };
    // One connection each: they go to both workers, and the third is over the limit of 2.
    assert.deepEqual([await submit(), await submit(), await submit()], [250, 250, 450]);
  });

  test('[limits] client_message_rate counts the whole server\'s messages from a client', async () => {
    const send = async (): Promise<number> => {
      const client = await SmtpClient.connect(server.port(), '127.0.0.1', '127.0.0.50');
      await client.expect(220);
      await client.command('EHLO client.remote.test', 250);
      const reply = await client.sendMail('bob@remote.test', ['alice@postern.test'], 'From: bob@remote.test\r\nSubject: rated\r\n\r\nrated\r\n');
      await client.quit();
      return reply.code;
    };
    // One connection each, so both workers take some; the limit is 2 a minute.
    assert.deepEqual([await send(), await send(), await send()], [250, 250, 450]);
  });

  test('AUTH failures are counted across the workers: the lockout is the whole server\'s', async () => {
    const attempt = async (): Promise<string> => wrongPassword(await SmtpClient.open(server.port('submission')));
    for (let i = 0; i < 3; i++) assert.match(await attempt(), /^535 /);
    const workers = new Set<unknown>();
    for (let i = 0; i < 3 && workers.size < 2; i++) {
      workers.add((await server.waitForLog((e) => e.msg === 'auth failed' && !workers.has(e.worker))).worker);
    }
    assert.ok(workers.size >= 2, 'the failures did not reach more than one worker');
    // Whichever worker takes these, the IP is locked: 3 failures in all, though none saw 3 itself.
    assert.match(await attempt(), /^454 4\.7\.0 /);
    assert.match(await attempt(), /^454 4\.7\.0 /);
  });

  test('session workers SIGKILLed and started again keep the AUTH lockouts and client message rates', { skip: !asRoot && 'needs root' }, async () => {
    // Addresses of their own: the tests above have used 127.0.0.1's and 127.0.0.50's counts.
    const guesser = '127.0.0.61';
    const sender = '127.0.0.62';
    const attempt = async (): Promise<string> => {
      const client = await SmtpClient.connect(server.port('submission'), '127.0.0.1', guesser);
      await client.expect(220);
      await client.command('EHLO client.remote.test', 250);
      return wrongPassword(client);
    };
    // client_message_rate counts at MAIL FROM: no message needs to be sent (nor delivered).
    const mailFrom = async (): Promise<number> => {
      const client = await SmtpClient.connect(server.port(), '127.0.0.1', sender);
      await client.expect(220);
      await client.command('EHLO client.remote.test', 250);
      const reply = await client.command('MAIL FROM:<bob@remote.test>');
      await client.quit();
      return reply.code;
    };
    // ip_max_failures is 3, client_message_rate 2 a minute.
    for (let i = 0; i < 3; i++) assert.match(await attempt(), /^535 /);
    assert.match(await attempt(), /^454 4\.7\.0 /);
    assert.deepEqual([await mailFrom(), await mailFrom()], [250, 250]);
    // Every session worker, so that none keeps the counts in its memory: the queue owner is the
    // one listening on the queue channel.
    const queueOwner = listenerOf(join(instance.dataDir, 'run', 'queue.sock'));
    const killed = childrenOf(server.pid).filter((pid) => pid !== queueOwner);
    assert.equal(killed.length, 2);
    for (const pid of killed) process.kill(pid, 'SIGKILL');
    for (const worker of [0, 1]) {
      await server.waitForLog((e) => e.msg === 'worker process started again' && e.worker === worker && !killed.includes(e.pid as number));
    }
    // Fresh processes, yet the IP is still locked out and the sender still over its rate.
    const afterRestart = { auth: (await attempt()).slice(0, 9), mailFrom: await mailFrom() };
    assert.deepEqual(afterRestart, { auth: '454 4.7.0', mailFrom: 450 });
  });

  test('SIGKILL of workers under load loses no accepted message, and they are started again', async () => {
    const before = new Set(childrenOf(server.pid));
    const accepted: string[] = [];
    const send = async (n: number): Promise<void> => {
      const marker = `load-${n}-${Date.now()}`;
      try {
        const client = await SmtpClient.open(server.port());
        const reply = await client.sendMail('bob@remote.test', ['alice@postern.test'], `Subject: ${marker}\r\n\r\n${marker}\r\n`);
        if (reply.code === 250) accepted.push(marker);
        await client.quit();
      } catch {
        // A connection cut by the kill: no 250, so the client keeps the message.
      }
    };
    const load = Promise.all(Array.from({ length: 60 }, (_, n) => delay(n * 10).then(() => send(n))));
    await delay(200);
    for (const pid of before) process.kill(pid, 'SIGKILL');
    await load;
    assert.ok(accepted.length > 0, 'no message was accepted at all');
    // Four more: the counted submissions and the rated messages above.
    const mail = await instance.waitForMail('alice@postern.test', accepted.length + 4);
    const texts = mail.map((m) => m.text).join('\n');
    for (const marker of accepted) assert.ok(texts.includes(marker), `accepted ${marker} was lost`);
    await server.waitForLog((e) => e.msg === 'worker process started again' && e.worker === 'queue');
    const now = childrenOf(server.pid);
    assert.equal(now.length, 3);
    for (const pid of now) assert.ok(!before.has(pid));
    // And the new ones serve.
    const client = await SmtpClient.open(server.port());
    await client.quit();
  });

  test('stopping the primary stops every worker', async () => {
    const children = childrenOf(server.pid);
    assert.equal(children.length, 3);
    assert.equal(await server.stop(), 0);
    for (const pid of children) assert.ok(!alive(pid), `worker ${pid} outlived the primary`);
  });
});

/** The pid holding the listening Unix socket bound to `path`, from /proc/net/unix and /proc/PID/fd. */
function listenerOf(path: string): number | undefined {
  const line = readFileSync('/proc/net/unix', 'utf8').split('\n').find((l) => l.endsWith(` ${path}`) && l.split(/\s+/)[5] === '01');
  const inode = line?.trim().split(/\s+/)[6];
  if (inode === undefined) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        if (readlinkSync(`/proc/${entry}/fd/${fd}`) === `socket:[${inode}]`) return Number(entry);
      }
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return undefined;
}

describe('the queue channel between the session workers and the queue owner', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let socketPath: string;

  before(async () => {
    instance = new PosternInstance({ hostname: 'mx.postern.test', workers: 2 });
    socketPath = join(instance.dataDir, 'run', 'queue.sock');
    await instance.cliOk(['domain', 'add', 'postern.test']);
    await instance.addUser('alice@postern.test');
    server = await instance.start();
  });

  after(() => stopAndDispose(server, instance));

  test('the queue owner listens in a directory only the service account may enter', () => {
    const owner = listenerOf(socketPath);
    assert.ok(owner !== undefined, `nobody listens on ${socketPath}`);
    assert.ok(childrenOf(server.pid).includes(owner), 'the socket is not a child\'s');
    const dir = statSync(join(instance.dataDir, 'run'));
    assert.equal(dir.mode & 0o777, 0o700);
    assert.equal(dir.uid, idsOf(owner).uids[0]);
  });

  test('a call outstanding when the queue owner is SIGKILLed gets 451 4.3.0; the next owner takes the retry', async () => {
    const client = await SmtpClient.open(server.port());
    assert.equal((await client.sendMail('bob@remote.test', ['alice@postern.test'], 'Subject: before\r\n\r\nbefore\r\n')).code, 250);
    const owner = listenerOf(socketPath);
    assert.ok(owner !== undefined);
    // Stopped, it reads no call: the one below stays outstanding until the kill.
    process.kill(owner, 'SIGSTOP');
    await client.command('MAIL FROM:<bob@remote.test>', 250);
    await client.command('RCPT TO:<alice@postern.test>', 250);
    await client.command('DATA', 354);
    client.send('Subject: outstanding\r\n\r\noutstanding\r\n.\r\n');
    await assert.rejects(client.readReply(300), /no reply within/);
    process.kill(owner, 'SIGKILL');
    assert.match((await client.readReply()).raw, /^451 4\.3\.0 /);
    await server.waitForLog((e) => e.msg === 'worker process started again' && e.worker === 'queue');
    // The same session, so the same session worker: it connects to the new queue owner.
    const retry = await client.sendMail('bob@remote.test', ['alice@postern.test'], 'Subject: outstanding\r\n\r\noutstanding\r\n');
    assert.equal(retry.code, 250, retry.raw);
    await client.quit();
    const next = listenerOf(socketPath);
    assert.ok(next !== undefined && next !== owner);
    await instance.waitForMessage('alice@postern.test', 'Subject: before');
    await instance.waitForMessage('alice@postern.test', 'Subject: outstanding');
  });
});
