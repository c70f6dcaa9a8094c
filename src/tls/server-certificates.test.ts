import { test, describe, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { pino, type Logger } from 'pino';
import { configSchema, type Config } from '../config/schema.js';
import { ServerCertificates } from './server-certificates.js';
import { StartupError } from '../util/startup-error.js';
import { makeCertificate, writeCertificate, type TestCertificate } from '../../test/support/test-certificate.js';
import { tlsHandshake } from './tls-handshake.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-certs-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const undo of cleanups.splice(0).reverse()) undo();
});

let dirs = 0;
function freshDir(): string {
  const dir = path.join(tmp, String(++dirs));
  fs.mkdirSync(dir);
  return dir;
}

function configFor(dir: string, tlsTable: Record<string, unknown>): Config {
  return configSchema.parse({ hostname: 'mx.example.test', data_dir: dir, tls: tlsTable });
}

/** A real pino logger whose lines the test can wait for. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function load(config: Config, logger: Logger = pino({ level: 'silent' })): Promise<ServerCertificates> {
  const certificates = await ServerCertificates.load(config, logger, { debounceMs: 50 });
  cleanups.push(() => certificates.close());
  return certificates;
}

/** A TLS echo server on 127.0.0.1 that presents `certificates` the way Connection does. */
async function echoServer(certificates: ServerCertificates): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    tlsHandshake(socket, certificates, 5_000).then(
      (secure) => secure.pipe(secure),
      () => {},
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** Connects (with SNI when `serverName` is given) and returns the open socket. */
function connect(port: number, serverName?: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    // An IP address as host: Node then sends no SNI unless servername is set.
    const socket = tls.connect(
      { port, host: '127.0.0.1', rejectUnauthorized: false, ...(serverName ? { servername: serverName } : {}) },
      () => resolve(socket),
    );
    socket.once('error', reject);
  });
}

/** The subject CN of the certificate the server presents. */
async function presentedCn(port: number, serverName?: string): Promise<string> {
  const socket = await connect(port, serverName);
  const cn = socket.getPeerCertificate().subject.CN;
  socket.destroy();
  return String(cn);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

let alpha: TestCertificate;
let beta: TestCertificate;
let gamma: TestCertificate;

describe('choosing a certificate by SNI', () => {
  test('certificates for the tests', async () => {
    [alpha, beta, gamma] = await Promise.all([
      makeCertificate('alpha', ['mail.alpha.test']),
      makeCertificate('beta', ['mail.beta.test']),
      makeCertificate('gamma', []),
    ]);
  });

  test('each name gets its certificate; no SNI or an unknown name gets the first entry', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const b = writeCertificate(dir, 'beta', beta);
    const certificates = await load(configFor(dir, { certificates: [a, { ...b, names: ['*.beta.test'] }] }));
    const port = await echoServer(certificates);
    assert.equal(await presentedCn(port, 'mail.alpha.test'), 'alpha', 'a name from the SAN');
    assert.equal(await presentedCn(port, 'SMTP.Beta.Test'), 'beta', 'a configured wildcard name');
    assert.equal(await presentedCn(port), 'alpha', 'no SNI');
    assert.equal(await presentedCn(port, 'unknown.example.test'), 'alpha', 'an unknown name');
    assert.deepEqual(
      certificates.presented.map((c) => c.names),
      [['mail.alpha.test'], ['*.beta.test']],
    );
  });

  test('covers(name): the certificate SNI picks for the name, checked as the client checks it', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const b = writeCertificate(dir, 'beta', beta);
    const g = writeCertificate(dir, 'gamma', gamma);
    const certificates = await load(configFor(dir, { certificates: [a, { ...b, names: ['*.beta.test'] }, g] }));
    assert.equal(certificates.covers('mail.alpha.test'), true);
    assert.equal(certificates.covers('MAIL.ALPHA.TEST'), true);
    assert.equal(certificates.covers('mail.beta.test'), true);
    // Claimed by the configured wildcard, but the certificate itself is for mail.beta.test only.
    assert.equal(certificates.covers('smtp.beta.test'), false);
    assert.equal(certificates.covers('gamma'), true, 'no SAN: the CN');
    assert.equal(certificates.covers('unknown.example.test'), false);
  });

  test('[tls] cert/key is the default; a certificate without SAN serves its CN', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const g = writeCertificate(dir, 'gamma', gamma);
    const certificates = await load(configFor(dir, { ...g, certificates: [a] }));
    const port = await echoServer(certificates);
    assert.equal(await presentedCn(port), 'gamma');
    assert.equal(await presentedCn(port, 'gamma'), 'gamma');
    assert.equal(await presentedCn(port, 'mail.alpha.test'), 'alpha');
  });

  test('without any configured certificate, the generated one for hostname is served', async () => {
    const dir = freshDir();
    const certificates = await load(configFor(dir, {}));
    const port = await echoServer(certificates);
    assert.equal(await presentedCn(port, 'mail.alpha.test'), 'mx.example.test');
    assert.equal(certificates.presented.length, 1);
  });

  test('an unreadable entry at startup is a StartupError naming it', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const config = configFor(dir, { certificates: [a, { cert: path.join(dir, 'missing.pem'), key: a.key }] });
    await assert.rejects(ServerCertificates.load(config, pino({ level: 'silent' }), { watch: false }), (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.match(err.message, /^tls\.certificates\[1\]\.cert: cannot read certificate ".*missing\.pem": no such file$/);
      return true;
    });
  });
});

describe('reloading', () => {
  test('a replaced file is served to new connections without SIGHUP; open sessions stay up', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const { logger, lines } = capturingLogger();
    const certificates = await load(configFor(dir, { certificates: [a] }), logger);
    const port = await echoServer(certificates);
    const open = await connect(port, 'mail.alpha.test');
    assert.equal(open.getPeerCertificate().subject.CN, 'alpha');

    // Like a renewal: same paths, new content (key first, then certificate).
    writeCertificate(dir, 'alpha', beta);
    await until('the new certificate', async () => (await presentedCn(port, 'mail.alpha.test')) === 'beta');
    assert.ok(lines.some((l) => l.msg === 'TLS certificates reloaded'));
    // A certificate without configured names now serves the names in the new one.
    assert.deepEqual(certificates.presented[0]?.names, ['mail.beta.test']);

    // The session that started before the change still talks.
    const echoed = new Promise<string>((resolve) => open.once('data', (d: Buffer) => resolve(d.toString())));
    open.write('NOOP\r\n');
    assert.equal(await echoed, 'NOOP\r\n');
    open.destroy();
  });

  test('a broken file is logged in one line and the previous certificate kept', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const b = writeCertificate(dir, 'beta', beta);
    const { logger, lines } = capturingLogger();
    const certificates = await load(configFor(dir, { certificates: [a, b] }), logger);
    const port = await echoServer(certificates);

    fs.writeFileSync(b.cert, '-----BEGIN CERTIFICATE-----\nhalf a renewal\n');
    await until('the failure log line', () => lines.some((l) => l.msg === 'TLS certificate reload failed; keeping the previous one'));
    const failures = lines.filter((l) => l.msg === 'TLS certificate reload failed; keeping the previous one');
    assert.equal(failures[0]?.cert, b.cert);
    assert.equal(typeof failures[0]?.err, 'string');
    assert.ok(!String(failures[0]?.err).includes('\n'), 'one line');
    assert.equal(await presentedCn(port, 'mail.beta.test'), 'beta');
    assert.equal(await presentedCn(port, 'mail.alpha.test'), 'alpha');

    // A key that does not match the certificate is refused the same way.
    fs.writeFileSync(b.cert, beta.cert);
    fs.writeFileSync(b.key, gamma.key);
    await until('the second failure', () => lines.filter((l) => l.msg === 'TLS certificate reload failed; keeping the previous one').length >= 2);
    assert.equal(await presentedCn(port, 'mail.beta.test'), 'beta');
  });

  test('reload(config) (SIGHUP) picks up new entries and drops removed ones', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const b = writeCertificate(dir, 'beta', beta);
    const certificates = await load(configFor(dir, { certificates: [a] }));
    const port = await echoServer(certificates);
    assert.equal(await presentedCn(port, 'mail.beta.test'), 'alpha');

    await certificates.reload(configFor(dir, { certificates: [b, a] }));
    assert.equal(await presentedCn(port, 'mail.beta.test'), 'beta');
    assert.equal(await presentedCn(port), 'beta', 'the new first entry is the default');

    await certificates.reload(configFor(dir, { certificates: [a] }));
    assert.equal(await presentedCn(port, 'mail.beta.test'), 'alpha');
  });

  test('reload(config) keeps the old certificates when none of the new ones loads', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const { logger, lines } = capturingLogger();
    const certificates = await load(configFor(dir, { certificates: [a] }), logger);
    const port = await echoServer(certificates);
    await certificates.reload(configFor(dir, { certificates: [{ cert: path.join(dir, 'nope.pem'), key: a.key }] }));
    assert.ok(lines.some((l) => l.msg === 'TLS certificate not loaded'));
    assert.equal(await presentedCn(port), 'alpha');
  });
});

describe('snapshots, as a primary process hands them to its workers', () => {
  test('a worker built from a snapshot serves the same certificates, and replace() swaps them', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const b = writeCertificate(dir, 'beta', beta);
    const config = configFor(dir, { certificates: [a, { ...b, names: ['*.beta.test'] }] });
    const primary = await load(config);
    // Through structured clone, as over the IPC channel.
    const worker = ServerCertificates.fromSnapshot(config, structuredClone(primary.snapshot()), pino({ level: 'silent' }));
    const port = await echoServer(worker);
    assert.equal(await presentedCn(port, 'x.beta.test'), 'beta');
    assert.equal(await presentedCn(port), 'alpha');
    assert.deepEqual(worker.presented, primary.presented);

    const g = writeCertificate(dir, 'gamma', gamma);
    const next = configFor(dir, { cert: g.cert, key: g.key });
    worker.replace(next, [{ credentials: { cert: gamma.cert, key: gamma.key, certPath: g.cert, keyPath: g.key, generated: false }, configuredNames: undefined }]);
    assert.equal(await presentedCn(port, 'x.beta.test'), 'gamma');
  });

  test('replace() with a snapshot that does not build keeps what is served', async () => {
    const dir = freshDir();
    const a = writeCertificate(dir, 'alpha', alpha);
    const config = configFor(dir, { cert: a.cert, key: a.key });
    const { logger, lines } = capturingLogger();
    const worker = ServerCertificates.fromSnapshot(config, (await load(config)).snapshot(), logger);
    // A key that belongs to another certificate.
    worker.replace(config, [{ credentials: { cert: alpha.cert, key: beta.key, certPath: a.cert, keyPath: a.key, generated: false }, configuredNames: undefined }]);
    assert.equal(await presentedCn(await echoServer(worker)), 'alpha');
    assert.ok(lines.some((l) => l.msg === 'TLS certificates not replaced'));
  });
});
