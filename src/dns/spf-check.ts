// RFC 7208 check_host() as mailauth evaluates it (every mechanism, macros, include/redirect, the
// ten-lookup and two-void-lookup limits), asked through our DNS client so that [relay]
// dns_servers, the doctor's --dns servers and the test DNS server answer it. Never throws: a
// failure of ours is a temperror, as the RFC's own result for "could not tell now".

import { spf } from 'mailauth';
import { mailauthResolver } from './mailauth-resolver.js';
import type { DnsClient } from './resolver.js';

export interface SpfResult {
  readonly result: 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'temperror';
  /** mailauth's explanation, e.g. which mechanism matched or which limit was hit. */
  readonly detail: string;
}

export interface SpfQuery {
  readonly ip: string;
  /** MAIL FROM; '' checks the HELO identity, postmaster@helo (RFC 7208 2.4). */
  readonly sender: string;
  readonly helo: string;
  /** Our name, as mailauth writes it at the start of its comment (dropped from `detail`). */
  readonly mta: string;
  /** RFC 7208 to the letter, rather than mailauth's lenient default (see its `strict` option). */
  readonly strict?: boolean;
  /** The whole evaluation's time budget; past it, temperror. */
  readonly maxElapsedMs?: number;
}

export async function checkSpf(q: SpfQuery, dns: DnsClient): Promise<SpfResult> {
  try {
    const verdict = await spf({
      sender: q.sender,
      ip: q.ip,
      helo: q.helo,
      mta: q.mta,
      resolver: mailauthResolver(dns),
      strict: q.strict ?? false,
      ...(q.maxElapsedMs !== undefined ? { maxElapsedTime: q.maxElapsedMs } : {}),
    });
    const result = verdict.status.result;
    const known = ['pass', 'fail', 'softfail', 'neutral', 'none', 'permerror', 'temperror'] as const;
    const mapped = result === 'temperr' ? 'temperror' : known.find((k) => k === result);
    const comment = verdict.status.comment || result;
    const prefix = `${q.mta}: `;
    return { result: mapped ?? 'permerror', detail: comment.startsWith(prefix) ? comment.slice(prefix.length) : comment };
  } catch (err) {
    return { result: 'temperror', detail: err instanceof Error ? err.message : String(err) };
  }
}
