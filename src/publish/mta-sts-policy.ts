// The MTA-STS policy (RFC 8461 section 3.2) Postern serves for its own domains, and the id its
// TXT record carries. The id is derived from the policy text, so it changes exactly when the
// policy does: senders refetch a policy only when the TXT id differs from the one they cached
// (section 3.3), and a hand-kept id that was not bumped would leave them on the old one.

import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { parseDuration } from '../util/duration.js';

/** RFC 8461 section 3.2: max_age is at most 31557600 seconds (about a year). */
const MAX_AGE_LIMIT = 31_557_600;

export interface MtaStsPolicy {
  /** The body served at https://mta-sts.<domain>/.well-known/mta-sts.txt, CRLF line ends. */
  readonly text: string;
  /** The id= of the "_mta-sts.<domain>" TXT record: 1 to 32 letters and digits (section 3.1). */
  readonly id: string;
}

export function mtaStsPolicy(config: Config): MtaStsPolicy {
  // parseDuration gives milliseconds; the policy counts seconds.
  const maxAge = Math.min(Math.floor((parseDuration(config.mta_sts.max_age) ?? 0) / 1000), MAX_AGE_LIMIT);
  const lines = ['version: STSv1', `mode: ${config.mta_sts.mode}`];
  const mx = config.mta_sts.mx.length > 0 ? config.mta_sts.mx : [config.hostname];
  // Section 3.2: "mx" may repeat, one pattern per field; a "none" policy names none.
  if (config.mta_sts.mode !== 'none') for (const name of mx) lines.push(`mx: ${name.toLowerCase()}`);
  lines.push(`max_age: ${maxAge}`);
  const text = lines.map((l) => `${l}\r\n`).join('');
  const id = createHash('sha256').update(text).digest('hex').slice(0, 20);
  return { text, id };
}
