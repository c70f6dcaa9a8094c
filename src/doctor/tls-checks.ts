// The certificates the server presents (src/tls/), loaded as `postern serve` loads them: every
// name clients and senders connect to must be covered, none may be near its end, and each key
// must match its certificate (loading fails otherwise, as the server's start would).

import pino from 'pino';
import type { Config } from '../config/schema.js';
import { ServerCertificates } from '../tls/server-certificates.js';
import { findingsOf, type Finding } from './finding.js';

/** Renewal tools (certbot, acme.sh) renew 30 days ahead: 14 days left means renewal is failing. */
export const EXPIRY_WARN_DAYS = 14;

const DAY_MS = 24 * 3600 * 1000;

/** A name the certificates must cover, and what it costs when they do not. */
export interface CoveredName {
  readonly name: string;
  readonly why: string;
  readonly severity: 'fail' | 'warn';
}

export async function tlsFindings(config: Config, names: readonly CoveredName[], now = Date.now()): Promise<Finding[]> {
  const sink = findingsOf(null, 'tls');
  let certificates: ServerCertificates;
  try {
    // Silent: what the server would log is reported here as findings.
    certificates = await ServerCertificates.load(config, pino({ enabled: false }), { watch: false });
  } catch (err) {
    sink.fail('tls.load', err instanceof Error ? err.message : String(err), 'fix [tls] cert and key (or [[tls.certificates]]): PEM files of a certificate and its own private key');
    return sink.found;
  }
  try {
    for (const cert of certificates.presented) {
      const label = cert.generated ? 'the generated self-signed certificate' : cert.certPath;
      sink.pass('tls.key', `${label}: the key ${cert.keyPath} matches the certificate`);
      const days = Math.floor((Date.parse(cert.validTo) - now) / DAY_MS);
      const renew = `renew ${cert.certPath} (and check that its renewal job runs); the server reloads it by itself`;
      if (days < 0) sink.fail('tls.expiry', `${label} expired on ${cert.validTo}`, renew);
      else if (days < EXPIRY_WARN_DAYS) sink.warn('tls.expiry', `${label} expires in ${days} days (${cert.validTo})`, renew);
      else sink.pass('tls.expiry', `${label} is valid for ${days} more days (${cert.validTo})`);
      if (cert.generated) {
        sink.warn(
          'tls.issuer',
          'the server presents a self-signed certificate, which mail programs and senders that enforce MTA-STS refuse',
          `set [tls] cert and key to a certificate from a CA (e.g. Let's Encrypt) for ${names.map((n) => n.name).join(', ')}`,
        );
      }
    }
    for (const { name, why, severity } of names) {
      if (certificates.covers(name)) sink.pass('tls.names', `a certificate covers ${name}`);
      else sink[severity]('tls.names', `no certificate covers ${name}: ${why}`, `add ${name} to a certificate in [tls] or [[tls.certificates]]`);
    }
  } finally {
    certificates.close();
  }
  return sink.found;
}
