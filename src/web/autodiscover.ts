// Outlook's Autodiscover in its "plain old XML" form (Exchange's POX Autodiscover reference,
// [MS-OXDSCLI]): the client POSTs a request naming the address and the response schema it
// accepts, and gets its IMAP, POP3 and SMTP settings in responseschema/2006a. Outlook tries
// https://<domain>/autodiscover/autodiscover.xml, then https://autodiscover.<domain>/..., and
// spells the path in any case.
//
// The request is parsed with a real XML parser after two refusals of our own: a body that is
// not UTF-8, and any DOCTYPE (no Autodiscover client sends one, and entity definitions are how
// XML bombs and external-entity reads begin).

import { createHash } from 'node:crypto';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { OfferedService } from '../publish/offered-services.js';
import type { ClientSettings } from './client-settings.js';
import { el, xmlDocument, type XmlElement } from './xml.js';

export const REQUEST_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006';
export const RESPONSE_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a';
const ENVELOPE_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006';

export type AutodiscoverRequest =
  | { readonly ok: true; readonly emailAddress: string; readonly acceptableSchema: string }
  | { readonly ok: false; readonly reason: string };

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  // Every element as a list, so that a repeated element is seen, not silently merged or dropped.
  isArray: () => true,
});

/** The fields Outlook's request carries; anything else in it is ignored, as Exchange does. */
export function parseAutodiscoverRequest(body: Buffer): AutodiscoverRequest {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(body);
  } catch {
    return { ok: false, reason: 'not UTF-8' };
  }
  if (/<!DOCTYPE/i.test(text)) return { ok: false, reason: 'a DOCTYPE' };
  if (XMLValidator.validate(text) !== true) return { ok: false, reason: 'not well-formed XML' };
  const doc = parser.parse(text) as Record<string, unknown>;
  const request = only(only(doc, 'Autodiscover'), 'Request');
  const emailAddress = textOf(only(request, 'EMailAddress'));
  const acceptableSchema = textOf(only(request, 'AcceptableResponseSchema'));
  if (emailAddress === undefined) return { ok: false, reason: 'no Autodiscover/Request/EMailAddress' };
  if (acceptableSchema === undefined) return { ok: false, reason: 'no Autodiscover/Request/AcceptableResponseSchema' };
  return { ok: true, emailAddress, acceptableSchema };
}

/** The settings answer: one Protocol per type, the preferred service of each. */
export function autodiscoverResponse(emailAddress: string, settings: Extract<ClientSettings, { ok: true }>): string {
  const first = (protocol: OfferedService['protocol']): OfferedService[] => {
    const s = [...settings.incoming, ...settings.outgoing].find((x) => x.protocol === protocol);
    return s ? [s] : [];
  };
  const protocol = (s: OfferedService): XmlElement =>
    el(
      'Protocol',
      undefined,
      el('Type', undefined, s.protocol === 'pop3' ? 'POP3' : s.protocol.toUpperCase()),
      el('Server', undefined, s.host),
      el('Port', undefined, String(s.port)),
      el('DomainRequired', undefined, 'off'),
      el('LoginName', undefined, emailAddress),
      // SPA is NTLM; the login is a plain password inside TLS.
      el('SPA', undefined, 'off'),
      // Encryption wins over SSL where a client knows it: "SSL" is TLS from the first byte,
      // "TLS" is STARTTLS. SSL stays for older clients; both ways are encrypted.
      el('SSL', undefined, 'on'),
      el('Encryption', undefined, s.security === 'tls' ? 'SSL' : 'TLS'),
      el('AuthRequired', undefined, 'on'),
      ...(s.protocol === 'smtp' ? [el('UsePOPAuth', undefined, 'on'), el('SMTPLast', undefined, 'off')] : []),
    );
  return xmlDocument(
    el(
      'Autodiscover',
      { xmlns: ENVELOPE_SCHEMA },
      el(
        'Response',
        { xmlns: RESPONSE_SCHEMA },
        el(
          'Account',
          undefined,
          el('AccountType', undefined, 'email'),
          el('Action', undefined, 'settings'),
          ...[...first('imap'), ...first('pop3'), ...first('smtp')].map(protocol),
        ),
      ),
    ),
  );
}

/** The error answers: 600 "Invalid Request", 601 "Provider is not available" (another schema). */
export function autodiscoverError(code: 600 | 601, serverName: string, now: Date = new Date()): string {
  const message = code === 600 ? 'Invalid Request' : 'Provider is not available';
  // Id names the server that answered; Time is when, as HH:MM:SS.mmm.
  const id = String(createHash('sha256').update(serverName).digest().readUInt32BE(0));
  const time = now.toISOString().slice(11, 23);
  return xmlDocument(
    el(
      'Autodiscover',
      { xmlns: ENVELOPE_SCHEMA },
      el(
        'Response',
        undefined,
        el('Error', { Time: time, Id: id }, el('ErrorCode', undefined, String(code)), el('Message', undefined, message), el('DebugData', undefined)),
      ),
    ),
  );
}

/** The one element `name` under `parent`; undefined when it is absent or repeated. */
function only(parent: unknown, name: string): unknown {
  if (typeof parent !== 'object' || parent === null) return undefined;
  const list = (parent as Record<string, unknown>)[name];
  return Array.isArray(list) && list.length === 1 ? list[0] : undefined;
}

/** An element's text: a string once parsed (an element with children or nothing is not text). */
function textOf(node: unknown): string | undefined {
  return typeof node === 'string' && node !== '' ? node : undefined;
}
