// The report for people: one section per port, one line per finding, the fix indented under a
// WARN or FAIL, and at the end what the probe sent.

import type { ProbeReport } from './report.js';

const ROLE_NAMES = { mx: 'MX', submission: 'submission', submissions: 'submissions (implicit TLS)' } as const;

export function reportText(report: ProbeReport): string {
  const out: string[] = [`postern probe ${report.host}`];
  for (const s of report.sections) {
    out.push('', `== ${ROLE_NAMES[s.role]}: ${s.host} [${s.address}] port ${s.port}`);
    for (const f of s.findings) {
      out.push(`${f.status.padEnd(4)}  ${f.check}: ${f.message}`);
      if (f.fix) out.push(`      fix: ${f.fix}`);
    }
  }
  const c = report.counts;
  const sent = report.sent;
  out.push(
    '',
    `Summary: ${c.FAIL} FAIL, ${c.WARN} WARN, ${c.PASS} PASS, ${c.INFO} INFO in ${(report.durationMs / 1000).toFixed(1)}s.`,
    `Sent: ${sent.connections} connections, ${sent.commands} commands; ${sent.recipientsTried.length} RCPT addresses tried, each followed by RSET; ` +
      (sent.messages.length === 0 ? 'no message sent.' : `${sent.messages.length} message(s) sent: ${sent.messages.map((m) => `to ${m.to} on port ${m.port} (${m.purpose})`).join(', ')}.`),
  );
  return `${out.join('\n')}\n`;
}
