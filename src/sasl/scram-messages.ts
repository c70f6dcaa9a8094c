// The SCRAM message syntax (RFC 5802 section 7), shared by the server (scram.ts) and the client
// (scram-client.ts). Messages are comma-separated "a=value" attributes; names inside them are
// "saslname"s, where "," and "=" are written =2C and =3D.

import { decodeBase64 } from './sasl-text.js';

/** RFC 9266: the only channel binding type Postern offers (tls-unique is unsafe with TLS 1.3). */
export const CHANNEL_BINDING_TYPE = 'tls-exporter';

/** The gs2-cbind-flag (RFC 5802 section 7): "n" no binding, "y" client could but thinks we can't, "p=" bound. */
export type ChannelBindingFlag =
  | { readonly kind: 'none' }
  | { readonly kind: 'supported-not-used' }
  | { readonly kind: 'bound'; readonly type: string };

export interface ClientFirst {
  readonly flag: ChannelBindingFlag;
  readonly authzid: string | undefined;
  /** The gs2 header exactly as sent; it is echoed in the client-final c= attribute. */
  readonly gs2Header: string;
  /** client-first-message-bare, part of the AuthMessage. */
  readonly bare: string;
  readonly username: string;
  readonly nonce: string;
}

export interface ClientFinal {
  readonly channelBinding: Buffer;
  readonly nonce: string;
  /** client-final-message-without-proof, part of the AuthMessage. */
  readonly withoutProof: string;
  readonly proof: Buffer;
}

export interface ServerFirst {
  readonly nonce: string;
  readonly salt: Buffer;
  readonly iterations: number;
}

/** printable = %x21-2B / %x2D-7E: any visible ASCII except ",". */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
const CB_NAME = /^[A-Za-z0-9.-]+$/;

export function encodeSaslname(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** Undefined for an "=" not followed by 2C or 3D (RFC 5802 5.1: the server must fail), or empty. */
export function decodeSaslname(text: string): string | undefined {
  if (text === '' || /=(?!2C|3D)/.test(text)) return undefined;
  return text.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

export function isNonce(text: string): boolean {
  return NONCE.test(text);
}

/** Parsed client-first-message, or a reason it is malformed. */
export function parseClientFirst(message: string): ClientFirst | string {
  const firstComma = message.indexOf(',');
  const secondComma = firstComma < 0 ? -1 : message.indexOf(',', firstComma + 1);
  if (secondComma < 0) return 'no gs2 header';
  const flagText = message.slice(0, firstComma);
  const authzidText = message.slice(firstComma + 1, secondComma);
  const flag = parseFlag(flagText);
  if (!flag) return `bad channel binding flag "${flagText}"`;
  let authzid: string | undefined;
  if (authzidText !== '') {
    authzid = authzidText.startsWith('a=') ? decodeSaslname(authzidText.slice(2)) : undefined;
    if (authzid === undefined) return 'bad authzid';
  }
  const bare = message.slice(secondComma + 1);
  const attrs = bare.split(',');
  // RFC 5802 5.1: "m" is reserved for mandatory extensions; we know none, so we must fail.
  if (attrs[0]?.startsWith('m=')) return 'mandatory extension not supported';
  const username = attrs[0]?.startsWith('n=') ? decodeSaslname(attrs[0].slice(2)) : undefined;
  if (username === undefined) return 'bad username';
  const nonce = attrs[1]?.startsWith('r=') ? attrs[1].slice(2) : '';
  if (!isNonce(nonce)) return 'bad nonce';
  if (!attrs.slice(2).every(isExtension)) return 'bad extension';
  return { flag, authzid, gs2Header: message.slice(0, secondComma + 1), bare, username, nonce };
}

/** Extensions we do not know are ignored, but must still be attr-val: ALPHA "=" value. */
function isExtension(attr: string): boolean {
  return /^[A-Za-z]=/.test(attr);
}

function parseFlag(text: string): ChannelBindingFlag | undefined {
  if (text === 'n') return { kind: 'none' };
  if (text === 'y') return { kind: 'supported-not-used' };
  if (text.startsWith('p=') && CB_NAME.test(text.slice(2))) return { kind: 'bound', type: text.slice(2) };
  return undefined;
}

export function parseClientFinal(message: string): ClientFinal | string {
  // The proof is always the last attribute (RFC 5802 section 7, client-final-message).
  const proofAt = message.lastIndexOf(',p=');
  if (proofAt < 0) return 'no proof';
  const withoutProof = message.slice(0, proofAt);
  const proof = decodeBase64(message.slice(proofAt + 3));
  if (!proof) return 'bad proof encoding';
  const attrs = withoutProof.split(',');
  const channelBinding = attrs[0]?.startsWith('c=') ? decodeBase64(attrs[0].slice(2)) : undefined;
  if (!channelBinding) return 'bad channel binding attribute';
  const nonce = attrs[1]?.startsWith('r=') ? attrs[1].slice(2) : '';
  if (!isNonce(nonce)) return 'bad nonce';
  if (!attrs.slice(2).every(isExtension)) return 'bad extension';
  return { channelBinding, nonce, withoutProof, proof };
}

export function formatServerFirst(first: ServerFirst): string {
  return `r=${first.nonce},s=${first.salt.toString('base64')},i=${first.iterations}`;
}

export function parseServerFirst(message: string): ServerFirst | string {
  if (message.startsWith('m=')) return 'mandatory extension not supported';
  const m = /^r=([^,]+),s=([^,]+),i=(\d{1,10})(?:,.*)?$/s.exec(message);
  if (!m) return 'malformed server-first-message';
  const [, nonce = '', saltText = '', iterations] = m;
  const salt = decodeBase64(saltText);
  if (!isNonce(nonce) || !salt || salt.length === 0) return 'bad nonce or salt';
  return { nonce, salt, iterations: Number(iterations) };
}
