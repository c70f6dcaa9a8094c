import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { reply } from '../mail/reply.js';
import { checkEhlo } from './ehlo-check.js';
import { parseEhlo } from './probe-connection.js';
import { relayForms } from './relay-check.js';
import { countFindings, Findings, type ProbeReport } from './report.js';
import { reportText } from './report-text.js';
import { checkVersions } from './tls-check.js';

describe('probe findings', () => {
  test('EHLO without SIZE and PIPELINING is a WARN each, with a fix', () => {
    const f = new Findings();
    const r = reply(250, undefined, 'mx.example.com', '8BITMIME', 'STARTTLS');
    checkEhlo(f, r, parseEhlo(r), 'before TLS');
    const byCheck = new Map(f.list.map((x) => [x.check, x]));
    assert.equal(byCheck.get('ehlo.size')?.status, 'WARN');
    assert.equal(byCheck.get('ehlo.pipelining')?.status, 'WARN');
    assert.ok(byCheck.get('ehlo.size')?.fix);
    assert.match(byCheck.get('ehlo.8bitmime')?.message ?? '', /is offered/);
    assert.match(byCheck.get('ehlo.requiretls')?.message ?? '', /is not offered/);
  });

  test('EHLO with a SIZE limit reports it', () => {
    const f = new Findings();
    const r = reply(250, undefined, 'mx.example.com', 'SIZE 10485760', 'PIPELINING');
    checkEhlo(f, r, parseEhlo(r), 'over TLS');
    assert.deepEqual(
      f.list.filter((x) => x.check === 'ehlo.size' || x.check === 'ehlo.pipelining').map((x) => [x.check, x.status]),
      [['ehlo.size', 'PASS'], ['ehlo.pipelining', 'PASS']],
    );
    assert.match(f.list.find((x) => x.check === 'ehlo.size')?.message ?? '', /10485760 octets \(10\.0 MiB\)/);
  });

  test('TLS 1.0 or 1.1 accepted is a WARN; neither 1.2 nor 1.3 is a FAIL', () => {
    const f = new Findings();
    checkVersions(f, ['TLSv1', 'TLSv1.1'], new Map());
    const status = (check: string): string | undefined => f.list.find((x) => x.check === check)?.status;
    assert.equal(status('tls.version.tlsv1'), 'WARN');
    assert.equal(status('tls.version.tlsv1.1'), 'WARN');
    assert.equal(status('tls.versions'), 'FAIL');
    const g = new Findings();
    checkVersions(g, ['TLSv1.2', 'TLSv1.3'], new Map());
    assert.deepEqual(g.list.filter((x) => x.status !== 'PASS' && x.status !== 'INFO'), []);
  });

  test('relay forms: each tricky form is built on the local domain and names the remote one', () => {
    const forms = new Map(relayForms('example.com', '192.0.2.25').map((form) => [form.name, form.recipient]));
    assert.equal(forms.get('percent-hack'), 'postern-probe%relay-test.example.com@example.com');
    assert.equal(forms.get('bang-path'), 'relay-test.example.com!postern-probe@example.com');
    assert.equal(forms.get('quoted-at'), '"postern-probe@relay-test.example.com"@example.com');
    assert.equal(forms.get('source-route'), '@example.com:postern-probe@relay-test.example.com');
    assert.equal(forms.get('address-literal'), 'postern-probe%relay-test.example.com@[192.0.2.25]');
    assert.equal(forms.get('upper-case'), 'POSTERN-PROBE@RELAY-TEST.EXAMPLE.COM');
    assert.equal(forms.get('trailing-dot'), 'postern-probe@relay-test.example.com.');
    assert.equal(relayForms('example.com', '2001:db8::25').find((x) => x.name === 'address-literal')?.recipient, 'postern-probe%relay-test.example.com@[IPv6:2001:db8::25]');
  });

  test('the text report: one section per port, fixes under WARN and FAIL, what was sent', () => {
    const f = new Findings();
    f.pass('relay.plain', 'Relay refused.');
    f.fail('auth.cleartext-offered', 'AUTH PLAIN is offered before TLS.', 'Offer AUTH only after STARTTLS.');
    const sections = [{ role: 'mx' as const, host: 'mx.example.com', address: '192.0.2.25', port: 25, findings: f.list }];
    const report: ProbeReport = {
      host: 'mx.example.com',
      startedAt: '2026-01-01T00:00:00.000Z',
      durationMs: 1200,
      sections,
      sent: { connections: 3, commands: 40, recipientsTried: ['a@b.example'], messages: [] },
      counts: countFindings(sections),
    };
    assert.equal(
      reportText(report),
      [
        'postern probe mx.example.com',
        '',
        '== MX: mx.example.com [192.0.2.25] port 25',
        'PASS  relay.plain: Relay refused.',
        'FAIL  auth.cleartext-offered: AUTH PLAIN is offered before TLS.',
        '      fix: Offer AUTH only after STARTTLS.',
        '',
        'Summary: 1 FAIL, 0 WARN, 1 PASS, 0 INFO in 1.2s.',
        'Sent: 3 connections, 40 commands; 1 RCPT addresses tried, each followed by RSET; no message sent.',
        '',
      ].join('\n'),
    );
  });
});
