// The server's certificate: the configured one, or a self-signed one generated on first start.
// A self-signed certificate is still worth having on an MX: RFC 7435 opportunistic TLS encrypts
// against passive eavesdroppers even where nobody verifies the certificate, and most MTAs do not.

import { X509Certificate } from 'node:crypto';
import { chown, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { describeErrno, firstLine, StartupError } from '../util/startup-error.js';

export interface TlsCredentials {
  readonly cert: string;
  readonly key: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly generated: boolean;
}

/** Who should own generated files: the service account when we start as root. */
export interface FileOwner {
  readonly uid: number;
  readonly gid: number;
}

const TEN_YEARS_MS = 10 * 365.25 * 24 * 3600 * 1000;

// TLS 1.2 suites limited to forward-secret AEAD ones (Mozilla "intermediate"); TLS 1.3 suites are
// Node's defaults, all of which are modern. Below TLS 1.2 is refused (RFC 8996). Dovecot gets the
// same list from `postern dovecot config`.
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export function generatedPaths(dataDir: string): { certPath: string; keyPath: string } {
  const dir = join(dataDir, 'tls');
  return { certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem') };
}

/**
 * Reads [tls] cert/key, or the generated pair in <data_dir>/tls/ (creating it when missing or when
 * it no longer names our hostname). Throws StartupError with one line on any problem.
 */
export async function loadTlsCredentials(
  config: Config,
  logger: Logger,
  owner?: FileOwner,
): Promise<TlsCredentials> {
  if (config.tls.cert !== undefined && config.tls.key !== undefined) {
    const cert = await readPem(config.tls.cert, 'tls.cert', 'certificate');
    const key = await readPem(config.tls.key, 'tls.key', 'private key');
    return { cert, key, certPath: config.tls.cert, keyPath: config.tls.key, generated: false };
  }
  const { certPath, keyPath } = generatedPaths(config.data_dir);
  const existing = await readGenerated(certPath, keyPath);
  if (existing && namesHost(existing.cert, config.hostname)) {
    return { ...existing, certPath, keyPath, generated: true };
  }
  const fresh = await generateSelfSigned(config.hostname);
  await writeGenerated(certPath, keyPath, fresh, owner);
  logger.info({ cert: certPath, hostname: config.hostname }, 'generated a self-signed TLS certificate');
  return { ...fresh, certPath, keyPath, generated: true };
}

/** Reads one [[tls.certificates]] entry; `label` names it in errors, e.g. "tls.certificates[1]". */
export async function loadCertificateFiles(certPath: string, keyPath: string, label: string): Promise<TlsCredentials> {
  const [cert, key] = await Promise.all([
    readFile(certPath, 'utf8').catch((err: unknown) => {
      throw new StartupError(`${label}.cert: cannot read certificate "${certPath}": ${describeErrno(err)}`, { cause: err });
    }),
    readFile(keyPath, 'utf8').catch((err: unknown) => {
      throw new StartupError(`${label}.key: cannot read private key "${keyPath}": ${describeErrno(err)}`, { cause: err });
    }),
  ]);
  return { cert, key, certPath, keyPath, generated: false };
}

/**
 * The DNS names a certificate is for: its subjectAltName DNS entries, or, only when it has none,
 * its subject CN (RFC 6125 section 6.4.4: clients ignore the CN once SANs are present).
 */
export function certificateNames(certPem: string): string[] {
  const x509 = new X509Certificate(certPem);
  const san = (x509.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
  if (san.length > 0) return san;
  const cn = /^CN=(.+)$/m.exec(x509.subject);
  return cn?.[1] !== undefined ? [cn[1]] : [];
}

/** Builds the context used for new handshakes; a bad PEM or a key that does not match is one line. */
export function createSecureContext(c: TlsCredentials): tls.SecureContext {
  try {
    return tls.createSecureContext({
      cert: c.cert,
      key: c.key,
      minVersion: 'TLSv1.2',
      ciphers: TLS12_CIPHERS,
      honorCipherOrder: true,
    });
  } catch (err) {
    throw new StartupError(
      `TLS certificate "${c.certPath}" with key "${c.keyPath}" is not usable: ${firstLine(String((err as Error).message ?? err))}` +
        ' (expected PEM files of a matching certificate and private key)',
      { cause: err },
    );
  }
}

/** Logs a warning if the certificate has expired or is not yet valid; clients may refuse it. */
export function warnIfExpired(c: TlsCredentials, logger: Logger): void {
  try {
    const x509 = new X509Certificate(c.cert);
    const now = Date.now();
    if (Date.parse(x509.validTo) < now || Date.parse(x509.validFrom) > now) {
      logger.warn({ cert: c.certPath, valid_from: x509.validFrom, valid_to: x509.validTo }, 'TLS certificate is not valid now');
    }
  } catch {
    // createSecureContext reports unusable certificates; nothing more to say here.
  }
}

async function readPem(path: string, key: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new StartupError(
      `${key}: cannot read ${what} "${path}": ${describeErrno(err)}; fix the path or remove [tls] to use a generated self-signed certificate`,
      { cause: err },
    );
  }
}

async function readGenerated(certPath: string, keyPath: string): Promise<{ cert: string; key: string } | undefined> {
  try {
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    return { cert, key };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StartupError(`cannot read the generated TLS certificate in "${certPath}": ${describeErrno(err)}`, {
      cause: err,
    });
  }
}

function namesHost(certPem: string, hostname: string): boolean {
  try {
    return new X509Certificate(certPem).checkHost(hostname) !== undefined;
  } catch {
    return false;
  }
}

async function generateSelfSigned(hostname: string): Promise<{ cert: string; key: string }> {
  const notBeforeDate = new Date();
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + TEN_YEARS_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

async function writeGenerated(
  certPath: string,
  keyPath: string,
  pems: { cert: string; key: string },
  owner: FileOwner | undefined,
): Promise<void> {
  const dir = join(certPath, '..');
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
    // Written aside and renamed, so a crash never leaves half a key that the next start would reuse.
    await writeFile(`${keyPath}.tmp`, pems.key, { mode: 0o600 });
    await writeFile(`${certPath}.tmp`, pems.cert, { mode: 0o644 });
    if (owner) {
      // Generated as root before dropping privileges; the service account must read it on reload.
      for (const p of [dir, `${keyPath}.tmp`, `${certPath}.tmp`]) await chown(p, owner.uid, owner.gid);
    }
    await rename(`${keyPath}.tmp`, keyPath);
    await rename(`${certPath}.tmp`, certPath);
  } catch (err) {
    throw new StartupError(`cannot write the generated TLS certificate to "${dir}": ${describeErrno(err)}`, {
      cause: err,
    });
  }
}
