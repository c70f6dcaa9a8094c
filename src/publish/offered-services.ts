// What Postern offers mail programs, in the words they are told it: autoconfig, Autodiscover,
// .mobileconfig and the RFC 6186/8314 SRV records of `postern dns` all read this one list, so
// a client configured by any of them connects to the same host and ports.

import type { Config } from '../config/schema.js';
import { parseListenAddress } from '../config/schema.js';

export type ClientProtocol = 'imap' | 'pop3' | 'smtp';

/** "tls": TLS from the first byte (RFC 8314); "starttls": upgrade before the login (STARTTLS, STLS). */
export type ClientSecurity = 'tls' | 'starttls';

export interface OfferedService {
  readonly protocol: ClientProtocol;
  readonly security: ClientSecurity;
  readonly host: string;
  readonly port: number;
  /** Its RFC 6186/8314 SRV owner label, e.g. "_submissions._tcp". */
  readonly srv: string;
}

/** The services a client may use, RFC 8314 section 5.1's preference first: implicit TLS before STARTTLS. */
export function offeredServices(config: Config): OfferedService[] {
  const host = clientHost(config);
  const candidates: ReadonlyArray<readonly [ClientProtocol, ClientSecurity, readonly string[], string]> = [
    ['imap', 'tls', config.dovecot.imaps, '_imaps._tcp'],
    ['imap', 'starttls', config.dovecot.imap, '_imap._tcp'],
    ['pop3', 'tls', config.listen.pop3s, '_pop3s._tcp'],
    ['pop3', 'starttls', config.listen.pop3, '_pop3._tcp'],
    ['smtp', 'tls', config.listen.submissions, '_submissions._tcp'],
    ['smtp', 'starttls', config.listen.submission, '_submission._tcp'],
  ];
  const offered: OfferedService[] = [];
  for (const [protocol, security, listen, srv] of candidates) {
    const first = listen[0];
    // The first address's port: a server listening on several addresses uses one port for all.
    if (first !== undefined) offered.push({ protocol, security, host, port: parseListenAddress(first).port, srv });
  }
  return offered;
}

/** The server name mail programs connect to: [clients] host, else hostname. */
export function clientHost(config: Config): string {
  return (config.clients.host || config.hostname).toLowerCase();
}
