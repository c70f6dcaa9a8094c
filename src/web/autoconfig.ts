// Thunderbird's autoconfig file, clientConfig version 1.1 (the format of the Thunderbird wiki's
// "Autoconfiguration:ConfigFileFormat"; also read by K-9/Thunderbird for Android, Evolution,
// KMail and others). Thunderbird offers the first incomingServer and outgoingServer and keeps
// the others as alternatives, so the order is offeredServices': IMAP before POP3, implicit TLS
// (socketType "SSL") before STARTTLS.
//
// The username is the placeholder %EMAILADDRESS%, which the client fills in itself, so the
// answer is the same for every address of a domain and says nothing about who exists.
// "password-cleartext" is PLAIN/LOGIN or USER/PASS, always inside TLS here: Postern offers
// them only after STARTTLS or on implicit TLS.

import type { OfferedService } from '../publish/offered-services.js';
import type { ClientSettings } from './client-settings.js';
import { el, xmlDocument, type XmlElement } from './xml.js';

export function autoconfigXml(domain: string, settings: Extract<ClientSettings, { ok: true }>): string {
  const server = (tag: 'incomingServer' | 'outgoingServer', s: OfferedService): XmlElement =>
    el(
      tag,
      { type: s.protocol },
      el('hostname', undefined, s.host),
      el('port', undefined, String(s.port)),
      el('socketType', undefined, s.security === 'tls' ? 'SSL' : 'STARTTLS'),
      el('authentication', undefined, 'password-cleartext'),
      el('username', undefined, '%EMAILADDRESS%'),
    );
  return xmlDocument(
    el(
      'clientConfig',
      { version: '1.1' },
      el(
        'emailProvider',
        { id: domain },
        el('domain', undefined, domain),
        el('displayName', undefined, domain),
        el('displayShortName', undefined, domain),
        ...settings.incoming.map((s) => server('incomingServer', s)),
        ...settings.outgoing.map((s) => server('outgoingServer', s)),
      ),
    ),
  );
}
