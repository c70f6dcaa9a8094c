// TLS as a client sees it: STARTTLS offered (RFC 3207) or TLS from the first byte (RFC 8314),
// the version and cipher negotiated, the certificate (names against the host, chain, expiry), and
// which protocol versions the server still accepts, each tried on its own connection.

import { checkServerIdentity, type SecureVersion } from 'node:tls';
import type { Findings, ProbeRole } from './report.js';
import type { TlsDetails } from './probe-connection.js';

/** A certificate closer to expiry than this should have been renewed already (ACME renews at 30). */
const EXPIRY_WARN_DAYS = 14;

export const PROBED_VERSIONS: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const OUTDATED: readonly string[] = ['TLSv1', 'TLSv1.1'];

export function checkStartTlsOffered(f: Findings, ext: ReadonlyMap<string, string>): boolean {
  if (ext.has('STARTTLS')) {
    f.pass('tls.starttls', 'STARTTLS is offered.');
    return true;
  }
  f.fail('tls.starttls', 'STARTTLS is not offered: mail and passwords cross the network in clear text.', 'Configure a certificate and offer STARTTLS (RFC 3207).');
  return false;
}

export function checkNegotiated(f: Findings, tls: TlsDetails, how: string): void {
  if (OUTDATED.includes(tls.version)) {
    f.warn('tls.negotiated', `${how} negotiated the outdated ${tls.version} with ${tls.cipher}.`, 'Enable TLS 1.2 and 1.3 on the server.');
  } else {
    f.pass('tls.negotiated', `${how} negotiated ${tls.version} with ${tls.cipher}.`);
  }
}

export function checkCertificate(f: Findings, tls: TlsDetails, host: string, now = new Date()): void {
  const cert = tls.certificate;
  if (!cert) {
    f.fail('tls.certificate', 'The server sent no certificate.', 'Configure a certificate for the host name.');
    return;
  }
  const identityError = checkServerIdentity(host, cert);
  const names = cert.subjectaltname ?? `CN=${String(cert.subject?.CN ?? '')}`;
  if (identityError) {
    f.fail('tls.certificate-name', `The certificate does not cover ${host} (it names ${names}).`, `Use a certificate whose subjectAltName includes ${host}.`);
  } else {
    f.pass('tls.certificate-name', `The certificate covers ${host}.`);
  }
  if (tls.authorized) {
    f.pass('tls.certificate-chain', `The certificate chain is trusted (issuer: ${String(cert.issuer?.CN ?? cert.issuer?.O ?? 'unknown')}).`);
  } else {
    // An MX with an untrusted certificate still gets opportunistic TLS (RFC 7435), but MTA-STS,
    // DANE-less validating senders and every mail client refuse it.
    f.warn('tls.certificate-chain', `The certificate chain is not trusted: ${tls.authorizationError ?? 'unknown reason'}.`, 'Use a certificate from a public CA (e.g. Let\'s Encrypt) and serve the full chain.');
  }
  const expires = new Date(cert.valid_to);
  const days = Math.floor((expires.getTime() - now.getTime()) / 86_400_000);
  if (Number.isNaN(days)) f.warn('tls.certificate-expiry', 'The certificate\'s expiry date cannot be read.', 'Replace the certificate.');
  else if (days < 0) f.fail('tls.certificate-expiry', `The certificate expired ${-days} days ago (${expires.toISOString()}).`, 'Renew the certificate.');
  else if (days < EXPIRY_WARN_DAYS) f.warn('tls.certificate-expiry', `The certificate expires in ${days} days (${expires.toISOString()}).`, 'Renew the certificate now, and automate renewal.');
  else f.pass('tls.certificate-expiry', `The certificate is valid for ${days} more days (until ${expires.toISOString().slice(0, 10)}).`);
}

/** The versions a server accepted, from one handshake attempt per version. */
export function checkVersions(f: Findings, accepted: readonly SecureVersion[], failed: ReadonlyMap<SecureVersion, string>): void {
  for (const v of PROBED_VERSIONS) {
    const ok = accepted.includes(v);
    if (OUTDATED.includes(v)) {
      if (ok) f.warn(`tls.version.${v.toLowerCase()}`, `The server accepts the outdated ${v}.`, `Disable ${v} (RFC 8996); allow only TLS 1.2 and 1.3.`);
      else f.pass(`tls.version.${v.toLowerCase()}`, `The server refuses ${v}.`);
    } else {
      f.info(`tls.version.${v.toLowerCase()}`, ok ? `The server accepts ${v}.` : `The server does not accept ${v}${failed.get(v) ? ` (${failed.get(v)})` : ''}.`);
    }
  }
  if (!accepted.includes('TLSv1.2') && !accepted.includes('TLSv1.3')) {
    f.fail('tls.versions', 'The server accepts neither TLS 1.2 nor TLS 1.3.', 'Enable TLS 1.2 and 1.3.');
  }
}

/** How TLS starts on a role's port. */
export function tlsStart(role: ProbeRole): 'implicit' | 'starttls' {
  return role === 'submissions' ? 'implicit' : 'starttls';
}
