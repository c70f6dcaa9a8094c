// What a probe found, as data: `postern probe` prints it as text or JSON, and `postern doctor`
// reads it. The JSON form is this shape, unchanged (README "postern probe"; a test pins it):
// a report has one section per probed port, each section a list of findings, and a summary of
// everything the probe sent.

/** PASS: as it should be. WARN: works, but should be fixed. FAIL: a real problem. INFO: a fact. */
export type FindingStatus = 'PASS' | 'WARN' | 'FAIL' | 'INFO';

export interface Finding {
  /** Which check, e.g. "tls.versions", "relay.percent-hack": stable names scripts may match. */
  readonly check: string;
  readonly status: FindingStatus;
  /** One plain sentence. */
  readonly message: string;
  /** For WARN and FAIL: what to change. */
  readonly fix?: string;
}

/** The three roles a mail host listens in (RFC 5321 MX, RFC 6409 submission, RFC 8314 implicit TLS). */
export type ProbeRole = 'mx' | 'submission' | 'submissions';

export const ROLES: readonly ProbeRole[] = ['mx', 'submission', 'submissions'];

export const DEFAULT_PORTS: Readonly<Record<ProbeRole, number>> = { mx: 25, submission: 587, submissions: 465 };

export interface ProbeSection {
  readonly role: ProbeRole;
  readonly host: string;
  /** The address connected to. */
  readonly address: string;
  readonly port: number;
  readonly findings: readonly Finding[];
}

/** What the probe sent, so the operator knows exactly what happened to the server. */
export interface ProbeSent {
  readonly connections: number;
  readonly commands: number;
  /** RCPT addresses offered; every transaction that reached RCPT ended with RSET, never DATA, except `messages`. */
  readonly recipientsTried: readonly string[];
  /** Messages sent through DATA: only ever to --rcpt (the smuggling test). */
  readonly messages: readonly { readonly to: string; readonly port: number; readonly purpose: string }[];
}

export interface ProbeReport {
  readonly host: string;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly sections: readonly ProbeSection[];
  readonly sent: ProbeSent;
  readonly counts: Readonly<Record<FindingStatus, number>>;
}

export function countFindings(sections: readonly ProbeSection[]): Record<FindingStatus, number> {
  const counts: Record<FindingStatus, number> = { PASS: 0, WARN: 0, FAIL: 0, INFO: 0 };
  for (const s of sections) for (const f of s.findings) counts[f.status]++;
  return counts;
}

/** Collects one section's findings. */
export class Findings {
  readonly list: Finding[] = [];

  add(check: string, status: FindingStatus, message: string, fix?: string): void {
    this.list.push(fix === undefined || status === 'PASS' || status === 'INFO' ? { check, status, message } : { check, status, message, fix });
  }
  pass(check: string, message: string): void {
    this.add(check, 'PASS', message);
  }
  info(check: string, message: string): void {
    this.add(check, 'INFO', message);
  }
  warn(check: string, message: string, fix: string): void {
    this.add(check, 'WARN', message, fix);
  }
  fail(check: string, message: string, fix: string): void {
    this.add(check, 'FAIL', message, fix);
  }
}
