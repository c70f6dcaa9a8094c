// The report for people: the server's own findings first, then each domain's, grouped by
// section, one line per finding and the fix indented below it.

import type { DoctorReport, Finding, FindingSection } from './finding.js';

const SECTION_TITLES: Readonly<Record<FindingSection, string>> = {
  dns: 'DNS',
  tls: 'Certificates',
  listeners: 'Listeners',
  dnsbl: 'Blocklists',
  mail: 'Mail',
  disk: 'Disk',
};

export function reportText(report: DoctorReport): string {
  const lines: string[] = [];
  const scopes = new Map<string | null, Finding[]>();
  for (const f of report.findings) scopes.set(f.domain, [...(scopes.get(f.domain) ?? []), f]);
  for (const [domain, findings] of scopes) {
    if (lines.length > 0) lines.push('');
    lines.push(domain === null ? `Server ${report.hostname}` : `Domain ${domain}`);
    const sections = new Map<FindingSection, Finding[]>();
    for (const f of findings) sections.set(f.section, [...(sections.get(f.section) ?? []), f]);
    for (const [section, inSection] of sections) {
      lines.push(`  ${SECTION_TITLES[section]}`);
      for (const f of inSection) {
        lines.push(`    ${f.status.padEnd(7)} ${f.message}`);
        if (f.fix !== undefined) for (const [i, line] of f.fix.split('\n').entries()) lines.push(`${i === 0 ? '            fix: ' : '                 '}${line}`);
      }
    }
  }
  const { counts } = report;
  lines.push(
    '',
    `${counts.FAIL} FAIL, ${counts.WARN} WARN, ${counts.UNKNOWN} UNKNOWN, ${counts.PASS} PASS, ${counts.INFO} INFO: ` +
      (report.ok ? 'nothing fails' : 'fix what FAILs first'),
  );
  return `${lines.join('\n')}\n`;
}
