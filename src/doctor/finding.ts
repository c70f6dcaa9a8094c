// What `postern doctor` reports: one Finding per thing checked, each with a status and, when
// something is wrong, the exact record or command that puts it right. The JSON form of a
// DoctorReport is a documented interface for scripts (README "postern doctor"): fields are only
// ever added, never renamed or removed.

export const FINDING_STATUSES = ['PASS', 'WARN', 'FAIL', 'UNKNOWN', 'INFO'] as const;

/**
 * PASS: as it should be. WARN: works, but worth fixing (an expiring certificate, an optional
 * record missing). FAIL: mail is lost, refused or marked as spam because of it. UNKNOWN: the
 * check could not be made (a DNS timeout, a blocklist that refuses our resolver). INFO: a fact.
 */
export type FindingStatus = (typeof FINDING_STATUSES)[number];

/** Where a finding belongs in the report. */
export type FindingSection = 'dns' | 'tls' | 'listeners' | 'dnsbl' | 'mail' | 'disk';

export interface Finding {
  /** The local domain it is about; null: the server as a whole. */
  readonly domain: string | null;
  readonly section: FindingSection;
  /** A stable name for scripts, e.g. "dns.spf", "tls.expiry", "dnsbl". */
  readonly check: string;
  readonly status: FindingStatus;
  readonly message: string;
  /** The record to publish or the command to run; only when something is to be done. */
  readonly fix?: string;
}

export interface DoctorReport {
  readonly hostname: string;
  /** True when no finding is FAIL: `postern doctor` exits 0. */
  readonly ok: boolean;
  readonly counts: Readonly<Record<FindingStatus, number>>;
  readonly findings: readonly Finding[];
}

export function doctorReport(hostname: string, findings: readonly Finding[]): DoctorReport {
  const counts = Object.fromEntries(FINDING_STATUSES.map((s) => [s, 0])) as Record<FindingStatus, number>;
  for (const f of findings) counts[f.status]++;
  return { hostname, ok: counts.FAIL === 0, counts, findings };
}

/** Builds the findings of one section about one domain (or the server: null). */
export function findingsOf(domain: string | null, section: FindingSection): FindingSink {
  const found: Finding[] = [];
  const add =
    (status: FindingStatus) =>
    (check: string, message: string, fix?: string): void =>
      void found.push(fix === undefined ? { domain, section, check, status, message } : { domain, section, check, status, message, fix });
  return { found, pass: add('PASS'), warn: add('WARN'), fail: add('FAIL'), unknown: add('UNKNOWN'), info: add('INFO') };
}

type Add = (check: string, message: string, fix?: string) => void;

export interface FindingSink {
  readonly found: Finding[];
  readonly pass: Add;
  readonly warn: Add;
  readonly fail: Add;
  readonly unknown: Add;
  readonly info: Add;
}
