// ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 4.1.2 esmtp-param). Only the parameters of
// the extensions we announce in EHLO are accepted; an unknown, repeated or malformed one is refused
// with 555 5.5.4 (RFC 5321 4.1.1.11), never silently ignored.

import type { BodyType, DsnNotify, MailParams, RcptParams } from '../mail/envelope.js';
import { SmtpError } from '../mail/reply.js';

interface EsmtpParam {
  /** Upper case. */
  readonly keyword: string;
  readonly value: string | undefined;
}

// esmtp-keyword and esmtp-value (RFC 5321 4.1.2); the value may be UTF-8 (RFC 6531 3.3).
const PARAM = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\u0080-\u{10FFFF}]+))?$/u;
const ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const XTEXT = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });
/** RFC 3461 4.4: ENVID is at most 100 characters. */
const MAX_ENVID = 100;

function refuse(text: string): SmtpError {
  return new SmtpError(555, '5.5.4', text);
}

/** Splits "KEY=value KEY2" into parameters; refuses syntax errors and repeats. */
export function splitParams(text: string): EsmtpParam[] {
  const params: EsmtpParam[] = [];
  const seen = new Set<string>();
  for (const word of text.split(' ')) {
    if (word === '') continue;
    const m = PARAM.exec(word);
    if (!m) throw refuse(`Malformed parameter "${printable(word)}"`);
    const keyword = (m[1] ?? '').toUpperCase();
    if (seen.has(keyword)) throw refuse(`Parameter ${keyword} given twice`);
    seen.add(keyword);
    params.push({ keyword, value: m[2] });
  }
  return params;
}

/** MAIL FROM parameters. SIZE is returned as given; comparing it with our limit is the session's job. */
export function parseMailParams(text: string): MailParams {
  const result: MailParams = {};
  for (const { keyword, value } of splitParams(text)) {
    switch (keyword) {
      case 'SIZE': // RFC 1870
        if (value === undefined || !/^\d{1,20}$/.test(value)) throw refuse('SIZE needs a number of octets');
        result.size = Number(value);
        break;
      case 'BODY': // RFC 6152; BINARYMIME (RFC 3030) is not offered
        result.body = parseBody(value);
        break;
      case 'SMTPUTF8': // RFC 6531 3.4
        if (value !== undefined) throw refuse('SMTPUTF8 takes no value');
        result.smtputf8 = true;
        break;
      case 'RET': {
        // RFC 3461 4.3
        const ret = value?.toUpperCase();
        if (ret !== 'FULL' && ret !== 'HDRS') throw refuse('RET must be FULL or HDRS');
        result.ret = ret;
        break;
      }
      case 'ENVID': {
        // RFC 3461 4.4
        const envid = value === undefined ? undefined : decodeXtext(value);
        if (envid === undefined || value === undefined || value.length > MAX_ENVID) {
          throw refuse(`ENVID must be xtext of at most ${MAX_ENVID} characters`);
        }
        result.envid = envid;
        break;
      }
      case 'AUTH': // RFC 4954 5: the submitter's identity; we accept it and ignore it
        if (value === undefined) throw refuse('AUTH needs a value');
        break;
      default:
        throw refuse(`Parameter ${keyword} is not supported`);
    }
  }
  return result;
}

/** RCPT TO parameters (RFC 3461 4.1 NOTIFY, 4.2 ORCPT). */
export function parseRcptParams(text: string): RcptParams {
  const result: RcptParams = {};
  for (const { keyword, value } of splitParams(text)) {
    switch (keyword) {
      case 'NOTIFY':
        result.notify = parseNotify(value);
        break;
      case 'ORCPT':
        result.orcpt = parseOrcpt(value);
        break;
      default:
        throw refuse(`Parameter ${keyword} is not supported`);
    }
  }
  return result;
}

/** Decodes RFC 3461 4 xtext ("+" and two hex digits for an octet); undefined if malformed. */
export function decodeXtext(text: string): string | undefined {
  if (!XTEXT.test(text)) return undefined;
  // XTEXT admits only ASCII, so latin1 maps each character (and each "+XX" octet) to one byte.
  const octets = text.replace(/\+([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  try {
    return utf8.decode(Buffer.from(octets, 'latin1'));
  } catch {
    return undefined; // "+XX" octets that do not make UTF-8
  }
}

function parseBody(value: string | undefined): BodyType {
  const body = value?.toUpperCase();
  if (body === '7BIT' || body === '8BITMIME') return body;
  if (body === 'BINARYMIME') throw refuse('BODY=BINARYMIME is not supported');
  throw refuse('BODY must be 7BIT or 8BITMIME');
}

function parseNotify(value: string | undefined): DsnNotify[] {
  const bad = (text: string): SmtpError => new SmtpError(501, '5.5.4', text);
  if (value === undefined) throw bad('NOTIFY needs NEVER or a list of SUCCESS, FAILURE, DELAY');
  const items = value.toUpperCase().split(',');
  if (items.includes('NEVER')) {
    if (items.length > 1) throw bad('NOTIFY=NEVER cannot be combined with other values');
    return [];
  }
  const notify: DsnNotify[] = [];
  for (const item of items) {
    if (item !== 'SUCCESS' && item !== 'FAILURE' && item !== 'DELAY') {
      throw bad('NOTIFY needs NEVER or a list of SUCCESS, FAILURE, DELAY');
    }
    if (!notify.includes(item)) notify.push(item);
  }
  return notify;
}

function parseOrcpt(value: string | undefined): { addrType: string; address: string } {
  const semicolon = value?.indexOf(';') ?? -1;
  if (value === undefined || semicolon <= 0) throw refuse('ORCPT must be addr-type;address');
  const addrType = value.slice(0, semicolon);
  const address = decodeXtext(value.slice(semicolon + 1));
  if (!ATOM.test(addrType) || address === undefined || address === '') {
    throw refuse('ORCPT must be addr-type;address');
  }
  return { addrType: addrType.toLowerCase(), address };
}

/** For echoing a client's word in a reply: ASCII graphic characters only, and not too many. */
function printable(word: string): string {
  return word.replace(/[^\x21-\x7e]/g, '?').slice(0, 64);
}
