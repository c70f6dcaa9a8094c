// The two texts of MTA-STS (RFC 8461): the TXT record at _mta-sts.<domain> that announces a
// policy and its version id (section 3.1), and the policy file itself (section 3.2). Pure
// parsing, no I/O.

import { normalizeDomain } from '../mail/address.js';

export interface MtaStsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  /** MX host patterns: "mx.example.com" or "*.example.com" (one label), A-labels, lower case. */
  mx: string[];
  /** Seconds the policy may be cached and applied (RFC 8461 section 3.2: at most 31557600). */
  maxAge: number;
  /** The TXT record's id when the policy was fetched. */
  id: string;
}

export type ParsedPolicy = { ok: true; policy: Omit<MtaStsPolicy, 'id'> } | { ok: false; reason: string };

/** RFC 8461 section 3.2: max_age is at most about one year. */
export const MAX_POLICY_AGE = 31_557_600;

const MODES = ['enforce', 'testing', 'none'] as const;

/**
 * The id announced by a domain's _mta-sts TXT records, or undefined when it does not use
 * MTA-STS. Section 3.1: records not starting with "v=STSv1" are ignored, and anything but
 * exactly one remaining, well-formed record means no policy.
 */
export function parseStsRecord(records: readonly (readonly string[])[]): string | undefined {
  const candidates = records.map((strings) => strings.join('')).filter((text) => text.startsWith('v=STSv1'));
  const [record] = candidates;
  if (candidates.length !== 1 || record === undefined) return undefined;
  const fields = record.split(';').map((f) => f.trim());
  if (fields.at(-1) === '') fields.pop();
  if (fields[0] !== 'v=STSv1') return undefined;
  let id: string | undefined;
  for (const field of fields.slice(1)) {
    const m = /^([A-Za-z0-9_.-]+)=([\x21-\x3a\x3c\x3e-\x7e]+)$/.exec(field);
    if (!m) return undefined;
    if (m[1] === 'id') {
      if (id !== undefined || !/^[A-Za-z0-9]{1,32}$/.test(m[2] ?? '')) return undefined;
      id = m[2];
    }
  }
  return id;
}

/** Section 3.2: "key: value" lines; unknown keys ignored; of a repeated key other than mx, the first counts. */
export function parsePolicy(text: string): ParsedPolicy {
  const fields = new Map<string, string>();
  const mx: string[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return { ok: false, reason: `not a "key: value" line: ${JSON.stringify(line.slice(0, 80))}` };
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'mx') mx.push(value);
    else if (!fields.has(key)) fields.set(key, value);
  }

  if (fields.get('version') !== 'STSv1') return { ok: false, reason: 'version is not STSv1' };
  const mode = MODES.find((m) => m === fields.get('mode')?.toLowerCase());
  if (!mode) return { ok: false, reason: `unknown mode ${JSON.stringify(fields.get('mode') ?? '')}` };
  const maxAgeText = fields.get('max_age') ?? '';
  if (!/^\d{1,10}$/.test(maxAgeText)) return { ok: false, reason: 'max_age is missing or not a number' };
  const maxAge = Math.min(Number(maxAgeText), MAX_POLICY_AGE);

  const patterns: string[] = [];
  for (const value of mx) {
    const pattern = normalizePattern(value);
    if (!pattern) return { ok: false, reason: `bad mx pattern ${JSON.stringify(value)}` };
    patterns.push(pattern);
  }
  // A policy that enforces or tests must say which hosts it allows; "none" needs no list.
  if (mode !== 'none' && patterns.length === 0) return { ok: false, reason: 'no mx patterns' };
  return { ok: true, policy: { mode, mx: patterns, maxAge } };
}

/**
 * Section 4.1: the MX host matches a pattern exactly, or a "*.example.com" pattern with exactly
 * one more label on the left ("mx.example.com", not "a.b.example.com" nor "example.com").
 */
export function mxMatchesPolicy(policy: MtaStsPolicy, mxHost: string): boolean {
  const host = normalizeDomain(mxHost);
  if (!host) return false;
  return policy.mx.some((pattern) => {
    if (!pattern.startsWith('*.')) return host === pattern;
    const suffix = pattern.slice(1);
    return host.endsWith(suffix) && !host.slice(0, -suffix.length).includes('.') && host.length > suffix.length;
  });
}

/** A pattern in A-labels and lower case, or undefined if it is not a host name or "*." one. */
function normalizePattern(value: string): string | undefined {
  const wildcard = value.startsWith('*.');
  const name = normalizeDomain(wildcard ? value.slice(2) : value);
  if (!name) return undefined;
  return wildcard ? `*.${name}` : name;
}
