import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { pino } from 'pino';
import { configSchema, type Config } from '../config/schema.js';
import { createSecureContext, generatedPaths, loadTlsCredentials } from './tls-credentials.js';
import { StartupError } from '../util/startup-error.js';
import { tlsHandshake } from './tls-handshake.js';

const logger = pino({ level: 'silent' });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-tls-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function configIn(dir: string, extra: Partial<Record<string, unknown>> = {}): Config {
  return configSchema.parse({ hostname: 'mx.example.test', data_dir: dir, ...extra });
}

describe('generated self-signed certificate', () => {
  const dir = path.join(tmp, 'gen');

  test('is created on first start with a private key file', async () => {
    const creds = await loadTlsCredentials(configIn(dir), logger);
    assert.equal(creds.generated, true);
    const { certPath, keyPath } = generatedPaths(dir);
    assert.equal(creds.certPath, certPath);
    assert.equal(fs.statSync(keyPath).mode & 0o777, 0o600);
    const x509 = new X509Certificate(fs.readFileSync(certPath));
    assert.equal(x509.checkHost('mx.example.test'), 'mx.example.test');
    const years = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / (365 * 24 * 3600 * 1000);
    assert.ok(years > 9.9, `valid for ${years} years`);
    assert.equal(x509.publicKey.asymmetricKeyType, 'ec');
  });

  test('is reused on the next start', async () => {
    const first = fs.readFileSync(generatedPaths(dir).certPath, 'utf8');
    const creds = await loadTlsCredentials(configIn(dir), logger);
    assert.equal(creds.cert, first);
  });

  test('is replaced when the hostname changes', async () => {
    const creds = await loadTlsCredentials(configIn(dir, { hostname: 'other.example.test' }), logger);
    assert.equal(new X509Certificate(creds.cert).checkHost('other.example.test'), 'other.example.test');
  });

  test('serves a TLS 1.2+ handshake', async () => {
    const context = createSecureContext(await loadTlsCredentials(configIn(dir), logger));
    // tls.createServer ignores a secureContext option; the server wraps TCP sockets itself.
    const server = net.createServer((socket) => {
      tlsHandshake(socket, { defaultContext: context, contextFor: () => context }, 5_000).then((s) => s.end(), () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const c = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
        resolve(c.getProtocol());
        c.destroy();
      });
      c.on('error', reject);
    });
    server.close();
    assert.ok(protocol === 'TLSv1.3' || protocol === 'TLSv1.2', String(protocol));

    const old = await new Promise<string>((resolve) => {
      const c = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
      c.on('secureConnect', () => resolve('connected'));
      c.on('error', () => resolve('refused'));
    }).catch(() => 'refused');
    assert.equal(old, 'refused');
  });
});

describe('configured certificate', () => {
  test('a missing file is one line naming the key and the path', async () => {
    const cfg = configIn(path.join(tmp, 'x'), { tls: { cert: path.join(tmp, 'nope.pem'), key: path.join(tmp, 'nope.key') } });
    await assert.rejects(loadTlsCredentials(cfg, logger), (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.match(err.message, /^tls\.cert: cannot read certificate ".*nope\.pem": no such file/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  });

  test('a bad PEM is one line', async () => {
    const cert = path.join(tmp, 'bad.pem');
    const key = path.join(tmp, 'bad.key');
    fs.writeFileSync(cert, 'not a certificate\n');
    fs.writeFileSync(key, 'not a key\n');
    const creds = await loadTlsCredentials(configIn(path.join(tmp, 'y'), { tls: { cert, key } }), logger);
    assert.throws(
      () => createSecureContext(creds),
      (err: unknown) => {
        assert.ok(err instanceof StartupError);
        assert.match(err.message, /is not usable/);
        assert.ok(!err.message.includes('\n'));
        return true;
      },
    );
  });

  test('a certificate with the wrong key is refused', async () => {
    const a = await loadTlsCredentials(configIn(path.join(tmp, 'a')), logger);
    const b = await loadTlsCredentials(configIn(path.join(tmp, 'b')), logger);
    assert.throws(() => createSecureContext({ ...a, key: b.key }), StartupError);
  });
});
