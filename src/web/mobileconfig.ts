// An Apple configuration profile (.mobileconfig) with one com.apple.mail.managed payload, for
// iOS, iPadOS and macOS Mail: Apple's "Configuration Profile Reference" (the Mail payload). The
// profile is unsigned and holds no password: the device asks for it when the profile is
// installed, so the file is worth nothing to whoever intercepts or keeps it.
//
// The payload UUIDs are derived from the address (RFC 9562 5.5, version 5: SHA-1 of a namespace
// of ours and the address), so the same address always gets the same profile: installing it
// again replaces the installed one instead of adding a second account.

import { createHash } from 'node:crypto';
import type { OfferedService } from '../publish/offered-services.js';
import type { ClientAddress } from './email-address.js';
import type { ClientSettings } from './client-settings.js';
import { el, xmlDocument, type XmlElement } from './xml.js';

/** The namespace of Postern's profile UUIDs (a random UUID, fixed once). */
const PROFILE_NAMESPACE = '6f1c9a52-8a3e-4f0d-9b7c-2d5e4a1b3c60';

const PLIST_DOCTYPE = '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">';

type PlistValue = string | number | boolean | readonly PlistValue[] | { readonly [key: string]: PlistValue };

export function mobileconfig(client: ClientAddress, settings: Extract<ClientSettings, { ok: true }>): string {
  // The Mail payload has one incoming server: IMAP when offered, else POP3 (its only two types).
  const incoming = settings.incoming[0] as OfferedService;
  const outgoing = settings.outgoing[0] as OfferedService;
  const profileUuid = uuidV5(PROFILE_NAMESPACE, `profile:${client.address}`);
  const mailUuid = uuidV5(PROFILE_NAMESPACE, `mail:${client.address}`);
  // Reverse-DNS identifiers, as Apple asks; the UUID keeps two addresses apart.
  const identifier = `${client.domain.split('.').reverse().join('.')}.postern.mail`;
  const mail: Record<string, PlistValue> = {
    EmailAccountDescription: client.address,
    EmailAccountType: incoming.protocol === 'imap' ? 'EmailTypeIMAP' : 'EmailTypePOP',
    EmailAddress: client.address,
    IncomingMailServerAuthentication: 'EmailAuthPassword',
    IncomingMailServerHostName: incoming.host,
    IncomingMailServerPortNumber: incoming.port,
    // Mail uses TLS from the first byte on the implicit-TLS ports and STARTTLS on the others.
    IncomingMailServerUseSSL: true,
    IncomingMailServerUsername: client.address,
    OutgoingMailServerAuthentication: 'EmailAuthPassword',
    OutgoingMailServerHostName: outgoing.host,
    OutgoingMailServerPortNumber: outgoing.port,
    OutgoingMailServerUseSSL: true,
    OutgoingMailServerUsername: client.address,
    OutgoingPasswordSameAsIncomingPassword: true,
    PayloadDescription: `Mail account ${client.address}`,
    PayloadDisplayName: client.address,
    PayloadIdentifier: `${identifier}.account.${mailUuid}`,
    PayloadType: 'com.apple.mail.managed',
    PayloadUUID: mailUuid,
    PayloadVersion: 1,
  };
  const profile: Record<string, PlistValue> = {
    PayloadContent: [mail],
    PayloadDescription: `Sets up Mail for ${client.address}. Mail asks for the password when the profile is installed.`,
    PayloadDisplayName: `Mail: ${client.address}`,
    PayloadIdentifier: `${identifier}.${profileUuid}`,
    PayloadRemovalDisallowed: false,
    PayloadType: 'Configuration',
    PayloadUUID: profileUuid,
    PayloadVersion: 1,
  };
  return xmlDocument(el('plist', { version: '1.0' }, plist(profile)), PLIST_DOCTYPE);
}

/** A name-based UUID, version 5 (RFC 9562 section 5.5), upper-case as Apple writes them. */
export function uuidV5(namespace: string, name: string): string {
  const hash = createHash('sha1').update(Buffer.from(namespace.replaceAll('-', ''), 'hex')).update(name, 'utf8').digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex').toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A plist value as XML (Apple's PropertyList-1.0 DTD): dict keys in the given order. */
function plist(value: PlistValue): XmlElement {
  if (typeof value === 'string') return el('string', undefined, value);
  if (typeof value === 'number') return el('integer', undefined, String(value));
  if (typeof value === 'boolean') return el(value ? 'true' : 'false', undefined);
  if (Array.isArray(value)) return el('array', undefined, ...value.map(plist));
  const entries = Object.entries(value as Record<string, PlistValue>);
  return el('dict', undefined, ...entries.flatMap(([k, v]) => [el('key', undefined, k), plist(v)]));
}
