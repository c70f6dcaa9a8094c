import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doctorReport, type Finding } from './finding.js';
import { changesText, reportChanges } from './report-changes.js';

const finding = (check: string, status: Finding['status'], message: string, domain: string | null = null): Finding => ({
  domain,
  section: 'dns',
  check,
  status,
  message,
});

test('matched by domain, check and place; compared by status; missing counts as PASS; INFO as PASS', () => {
  const before = doctorReport('mx.test', [
    finding('listener', 'PASS', 'a up'),
    finding('listener', 'PASS', 'b up'),
    finding('tls.expiry', 'WARN', 'expires in 9 days'),
    finding('dns.ptr', 'FAIL', 'no PTR'),
    finding('dns.mx', 'PASS', 'ok', 'a.test'),
  ]);
  const after = doctorReport('mx.test', [
    finding('listener', 'PASS', 'a up'),
    finding('listener', 'FAIL', 'b refused'),
    // Same status, another message (a day later): no change.
    finding('tls.expiry', 'WARN', 'expires in 8 days'),
    finding('dns.mx', 'FAIL', 'not us', 'a.test'),
    finding('dns.mx', 'PASS', 'ok', 'b.test'),
    finding('dns.note', 'INFO', 'a note', 'b.test'),
  ]);
  const changes = reportChanges(before, after);
  assert.deepEqual(
    changes.map((c) => `${c.domain ?? '-'} ${c.check} ${c.before}->${c.after} ${c.message}`),
    ['- listener PASS->FAIL b refused', 'a.test dns.mx PASS->FAIL not us', '- dns.ptr FAIL->PASS no longer found: no PTR'],
  );
  assert.deepEqual(reportChanges(after, after), []);
  assert.equal(changesText(changes.slice(0, 1)), 'server listener: PASS -> FAIL: b refused\n');
});

test('a first run reports the problems alone', () => {
  const now = doctorReport('mx.test', [finding('dns.ptr', 'FAIL', 'no PTR'), finding('dns.mx', 'PASS', 'ok'), finding('dns.note', 'INFO', 'x')]);
  assert.deepEqual(
    reportChanges(undefined, now).map((c) => `${c.check} ${c.before}->${c.after}`),
    ['dns.ptr PASS->FAIL'],
  );
});
