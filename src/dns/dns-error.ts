// The three outcomes of a failed DNS question that mail delivery must tell apart: the name does
// not exist (NXDOMAIN), it exists without records of that type (NODATA, RFC 2308 section 2.2),
// and no answer could be had (TEMPFAIL). The first two are answers and may bounce a message; the
// last must only ever defer it (RFC 5321 section 5.1: a temporary DNS error is a temporary
// delivery failure).

export type DnsErrorCode = 'NXDOMAIN' | 'NODATA' | 'TEMPFAIL';

export class DnsError extends Error {
  override readonly name = 'DnsError';

  constructor(
    readonly code: DnsErrorCode,
    /** The question, e.g. "MX example.com". */
    readonly question: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${question}: ${detail}`, options);
  }

  /** True for NXDOMAIN and NODATA: asking again will not change the answer soon. */
  get permanent(): boolean {
    return this.code !== 'TEMPFAIL';
  }
}

/** Maps a node:dns (c-ares) error code to ours; anything unknown is temporary. */
export function dnsErrorCode(nodeCode: string | undefined): DnsErrorCode {
  switch (nodeCode) {
    case 'ENOTFOUND':
    // c-ares refuses a malformed name before asking; no such name can exist.
    case 'EBADNAME':
      return 'NXDOMAIN';
    case 'ENODATA':
      return 'NODATA';
    default:
      // ESERVFAIL, ETIMEOUT, ECONNREFUSED, EREFUSED, EBADRESP, EFORMERR, ENOTIMP, ECANCELLED...
      return 'TEMPFAIL';
  }
}

export function describeDnsErrorCode(code: DnsErrorCode, nodeCode: string | undefined): string {
  switch (code) {
    case 'NXDOMAIN':
      return 'no such domain (NXDOMAIN)';
    case 'NODATA':
      return 'the name has no records of this type';
    case 'TEMPFAIL':
      return `no answer from DNS, try again later (${nodeCode ?? 'unknown error'})`;
  }
}
