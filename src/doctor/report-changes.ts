// What changed since the last run, for `postern doctor --changes FILE` run from a timer: only a
// change is worth a mail. Findings are matched by domain, check and their place among the
// findings of that domain and check (the order is fixed by the config), and compared by status
// alone, since messages carry numbers that move every day (days left, free space). A finding
// missing on one side counts as PASS there, so a first run reports exactly the problems, and a
// problem that went away is reported once.

import type { DoctorReport, Finding, FindingStatus } from './finding.js';

export interface FindingChange {
  readonly domain: string | null;
  readonly check: string;
  readonly before: FindingStatus;
  readonly after: FindingStatus;
  /** The message of the current finding, or of the previous one when it is gone. */
  readonly message: string;
  readonly fix?: string;
}

export function reportChanges(previous: DoctorReport | undefined, current: DoctorReport): FindingChange[] {
  const before = keyed(previous?.findings ?? []);
  const after = keyed(current.findings);
  const changes: FindingChange[] = [];
  for (const [key, now] of after) {
    const was = before.get(key);
    const from = quiet(was?.status);
    const to = quiet(now.status);
    if (from === to) continue;
    changes.push({ domain: now.domain, check: now.check, before: from, after: to, message: now.message, ...(now.fix === undefined ? {} : { fix: now.fix }) });
  }
  for (const [key, was] of before) {
    if (after.has(key) || quiet(was.status) === 'PASS') continue;
    changes.push({ domain: was.domain, check: was.check, before: was.status, after: 'PASS', message: `no longer found: ${was.message}` });
  }
  return changes;
}

export function changesText(changes: readonly FindingChange[]): string {
  return changes
    .map((c) => {
      const line = `${c.domain ?? 'server'} ${c.check}: ${c.before} -> ${c.after}: ${c.message}\n`;
      return c.fix === undefined ? line : `${line}    fix: ${c.fix.split('\n').join('\n         ')}\n`;
    })
    .join('');
}

/** INFO says nothing about health: it changes nothing, like PASS. */
function quiet(status: FindingStatus | undefined): FindingStatus {
  return status === undefined || status === 'INFO' ? 'PASS' : status;
}

function keyed(findings: readonly Finding[]): Map<string, Finding> {
  const map = new Map<string, Finding>();
  const seen = new Map<string, number>();
  for (const f of findings) {
    const base = `${f.domain ?? ''} ${f.check}`;
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    map.set(`${base} ${n}`, f);
  }
  return map;
}
