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

/** One RFC 6186/8314 service, and the listener that offers it (none: not offered). */
export interface ClientService {
  readonly protocol: ClientProtocol;
  readonly security: ClientSecurity;
  /** Its SRV owner label (RFC 6186 section 3, RFC 8314 section 5.1). */
  readonly srv: string;
  readonly listen: (config: Config) => readonly string[];
}

/** Every service a mail program may look for, RFC 8314 section 5.1's preference first: implicit TLS before STARTTLS. */
export const CLIENT_SERVICES: readonly ClientService[] = [
  { protocol: 'imap', security: 'tls', srv: '_imaps._tcp', listen: (c) => c.dovecot.imaps },
  { protocol: 'imap', security: 'starttls', srv: '_imap._tcp', listen: (c) => c.dovecot.imap },
  { protocol: 'pop3', security: 'tls', srv: '_pop3s._tcp', listen: (c) => c.listen.pop3s },
  { protocol: 'pop3', security: 'starttls', srv: '_pop3._tcp', listen: (c) => c.listen.pop3 },
  { protocol: 'smtp', security: 'tls', srv: '_submissions._tcp', listen: (c) => c.listen.submissions },
  { protocol: 'smtp', security: 'starttls', srv: '_submission._tcp', listen: (c) => c.listen.submission },
];

/**
 * The services a client may use, in the order of CLIENT_SERVICES. `host` replaces
 * clientHost(config) when the caller knows a name that suits the client better (src/web/ hands
 * out only names a certificate covers).
 */
export function offeredServices(config: Config, host: string = clientHost(config)): OfferedService[] {
  const offered: OfferedService[] = [];
  for (const { protocol, security, srv, listen } of CLIENT_SERVICES) {
    const first = listen(config)[0];
    // The first address's port: a server listening on several addresses uses one port for all.
    if (first !== undefined) offered.push({ protocol, security, host, port: parseListenAddress(first).port, srv });
  }
  return offered;
}

/** The server name mail programs connect to: [clients] host, else hostname. */
export function clientHost(config: Config): string {
  return (config.clients.host || config.hostname).toLowerCase();
}
