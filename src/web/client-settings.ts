// What mail programs are told to connect to, for autoconfig, Autodiscover and .mobileconfig
// alike: the services of src/publish/offered-services.ts, at a host name that a certificate of
// [tls] covers. A client that is told a name the certificate does not cover shows a certificate
// error on its first connection (or, worse, teaches its user to click such errors away), so:
//
//   1. [clients] host (else hostname) when the certificate SNI picks for it covers it;
//   2. otherwise hostname, when that is covered (the generated self-signed certificate always
//      covers it), with a warning to fix [clients] host or add a certificate;
//   3. otherwise nothing: the configuration URLs answer 503 and the server warns at start.
//
// It is worked out for each request, so a renewed or added certificate counts at once.

import type { Config } from '../config/schema.js';
import { clientHost, offeredServices, type OfferedService } from '../publish/offered-services.js';

/** Which names the server's certificates are valid for (ServerCertificates). */
export interface CertificateCoverage {
  covers(name: string): boolean;
}

export type ClientSettings =
  | {
      readonly ok: true;
      readonly host: string;
      /** IMAP before POP3, implicit TLS before STARTTLS (offeredServices' order). */
      readonly incoming: readonly OfferedService[];
      readonly outgoing: readonly OfferedService[];
      /** Set when the host is not the one the config asks for: what to fix. */
      readonly warning?: string;
    }
  | { readonly ok: false; readonly problem: string };

export function clientSettings(config: Config, certificates: CertificateCoverage): ClientSettings {
  const wanted = clientHost(config);
  const hostname = config.hostname.toLowerCase();
  const host = [wanted, hostname].find((name) => certificates.covers(name));
  const setting = config.clients.host === '' ? 'hostname' : '[clients] host';
  if (host === undefined) {
    const names = wanted === hostname ? `"${wanted}"` : `"${wanted}" nor hostname "${hostname}"`;
    return {
      ok: false,
      problem: `no [tls] certificate covers ${setting} ${names}, so mail programs are not configured (autoconfig answers 503): add a certificate for it, or set [clients] host to a name a certificate covers`,
    };
  }
  const services = offeredServices(config, host);
  const incoming = services.filter((s) => s.protocol !== 'smtp');
  const outgoing = services.filter((s) => s.protocol === 'smtp');
  if (incoming.length === 0 || outgoing.length === 0) {
    return {
      ok: false,
      problem: `no ${incoming.length === 0 ? 'IMAP or POP3' : 'submission'} listener is configured, so mail programs are not configured (autoconfig answers 503): set [listen] ${incoming.length === 0 ? 'pop3s or [dovecot] imaps' : 'submissions or submission'}`,
    };
  }
  if (host === wanted) return { ok: true, host, incoming, outgoing };
  return {
    ok: true,
    host,
    incoming,
    outgoing,
    warning: `no [tls] certificate covers [clients] host "${wanted}"; mail programs are told hostname "${host}" instead: add a certificate for "${wanted}", or change [clients] host`,
  };
}
