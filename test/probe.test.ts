// `postern probe` against real servers on loopback: a Postfix misconfigured on purpose (open
// relay through mynetworks, AUTH PLAIN offered in clear, TLS 1.0 allowed, bare-LF line ends)
// must get FAILs on exactly those points, and Postern with its defaults must get none. The JSON
// shape documented in the README is pinned here too.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestDnsServer } from './support/dns-server.js';
import { TestPostfix } from './support/postfix.js';
import { PosternInstance, runPostern, type PosternProcess } from './support/postern-process.js';
import { InjectableSmtpServer } from './support/injectable-smtp-server.js';
import { makeCertificate } from './support/test-certificate.js';

interface JsonFinding {
  check: string;
  status: string;
  message: string;
  fix?: string;
}
interface JsonReport {
  host: string;
  startedAt: string;
  durationMs: number;
  sections: { role: string; host: string; address: string; port: number; findings: JsonFinding[] }[];
  sent: { connections: number; commands: number; recipientsTried: string[]; messages: { to: string; port: number; purpose: string }[] };
  counts: Record<string, number>;
}

/** Where the PTR record of 127.0.0.1 lives (RFC 1035 section 3.5). */
const LOOPBACK_PTR = '1.0.0.127.in-addr.arpa';

const RELAY_FORMS = [
  'plain',
  'local-sender',
  'percent-hack',
  'bang-path',
  'quoted-at',
  'source-route',
  'double-at',
  'address-literal',
  'remote-literal',
  'upper-case',
  'trailing-dot',
];

function findings(report: JsonReport, status?: string): JsonFinding[] {
  return report.sections.flatMap((s) => s.findings).filter((f) => status === undefined || f.status === status);
}

function finding(report: JsonReport, check: string): JsonFinding {
  const found = findings(report).find((f) => f.check === check);
  assert.ok(found, `no finding ${check} in ${JSON.stringify(findings(report).map((f) => f.check))}`);
  return found;
}

const POSTFIX_USER = { username: 'someone', password: 'the password of someone' };

describe('postern probe against a misconfigured Postfix', { skip: TestPostfix.available() }, () => {
  const HOST = 'postfix.probe.test';
  let dns: TestDnsServer;
  let postfix: TestPostfix;

  before(async () => {
    dns = await TestDnsServer.start();
    dns.set(HOST, [{ type: 'A', address: '127.0.0.1' }]);
    dns.set(LOOPBACK_PTR, [{ type: 'PTR', target: HOST }]);
    postfix = await TestPostfix.start({
      hostname: HOST,
      domains: ['probe.test'],
      tls: await makeCertificate(HOST),
      users: [POSTFIX_USER],
      misconfigured: { openRelay: true, authInClear: true, tls1: true },
    });
  });

  after(async () => {
    await postfix?.stop();
    await dns?.close();
  });

  test('FAILs on the open relay (every form), AUTH in clear and bare LF.LF; WARNs on TLS 1.0 and 1.1', async () => {
    const result = await runPostern(
      ['probe', HOST, '--only', 'mx', '--mx', String(postfix.port), '--dns', dns.address, '--rcpt', 'someone@probe.test', '--json'],
      process.cwd(),
    );
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout) as JsonReport;
    const failed = findings(report, 'FAIL').map((f) => f.check).sort();
    const expected = [
      ...RELAY_FORMS.map((name) => `relay.${name}`),
      'auth.cleartext-offered',
      'auth.before-tls',
      'smuggling.lf-dot-lf',
    ].sort();
    assert.deepEqual(failed, expected, postfix.logTail());
    for (const f of findings(report, 'FAIL')) assert.ok(f.fix, `${f.check} has a fix`);
    assert.equal(finding(report, 'tls.version.tlsv1').status, 'WARN');
    assert.equal(finding(report, 'tls.version.tlsv1.1').status, 'WARN');
    assert.equal(finding(report, 'tls.version.tlsv1.2').status, 'INFO');
    assert.equal(finding(report, 'starttls-injection').status, 'PASS');
    assert.equal(finding(report, 'connection.fcrdns').status, 'PASS');
    assert.equal(finding(report, 'tls.certificate-name').status, 'PASS');
    assert.match(finding(report, 'relay.percent-hack').message, /someone|postern-probe%relay-test\.example\.com@probe\.test/);
    // Nothing reached DATA but the one test message to --rcpt.
    assert.deepEqual(report.sent.messages.map((m) => m.to), ['someone@probe.test']);
    assert.ok(report.sent.recipientsTried.includes('postern-probe%relay-test.example.com@probe.test'));
    // The test message is local to Postfix, delivered to its Maildir; nothing else was queued.
    await postfix.waitForMessage('SMTP smuggling test');
    for (let i = 0; i < 100 && postfix.queued() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(postfix.queued(), 0, 'no relayed message is queued');
    assert.equal(postfix.readMaildir().length, 1);
  });

  test('--user: a login over TLS with each mechanism; mynetworks lets it send as anyone', async () => {
    const result = await runPostern(
      ['probe', HOST, '--only', 'mx', '--mx', String(postfix.port), '--dns', dns.address, '--user', POSTFIX_USER.username, '--password-stdin', '--json'],
      process.cwd(),
      `${POSTFIX_USER.password}\n`,
    );
    const report = JSON.parse(result.stdout) as JsonReport;
    assert.equal(finding(report, 'auth.login.plain').status, 'PASS');
    assert.equal(finding(report, 'auth.login.login').status, 'PASS');
    assert.equal(finding(report, 'auth.sender-mismatch').status, 'FAIL');
    assert.doesNotMatch(result.stdout, new RegExp(POSTFIX_USER.password));
  });
});

describe('postern probe against Postern with its defaults', () => {
  const HOST = 'mx.postern.test';
  const USER = 'alice@postern.test';
  const PASSWORD = 'correct horse battery staple';
  let dns: TestDnsServer;
  let instance: PosternInstance;
  let server: PosternProcess;

  before(async () => {
    dns = await TestDnsServer.start();
    dns.set(HOST, [{ type: 'A', address: '127.0.0.1' }]);
    dns.set(LOOPBACK_PTR, [{ type: 'PTR', target: HOST }]);
    instance = new PosternInstance({ hostname: HOST });
    await instance.cliOk(['domain', 'add', 'postern.test']);
    await instance.addUser(USER, PASSWORD);
    server = await instance.start();
  });

  after(async () => {
    await server?.stop().catch(() => server.kill());
    await instance?.dispose();
    await dns?.close();
  });

  const args = (): string[] => [
    'probe',
    HOST,
    '--mx',
    String(server.port('mx')),
    '--submission',
    String(server.port('submission')),
    '--submissions',
    String(server.port('submissions')),
    '--dns',
    dns.address,
  ];

  test('no FAIL on any port, with a login and a test message; the JSON shape is stable', async () => {
    const result = await runPostern([...args(), '--user', USER, '--password-stdin', '--rcpt', USER, '--json'], instance.root, `${PASSWORD}\n`);
    const report = JSON.parse(result.stdout) as JsonReport;
    assert.deepEqual(findings(report, 'FAIL'), []);
    assert.equal(result.code, 0, result.stderr);

    // The shape README documents, key by key.
    assert.deepEqual(Object.keys(report), ['host', 'startedAt', 'durationMs', 'sections', 'sent', 'counts']);
    assert.deepEqual(report.sections.map((s) => s.role), ['mx', 'submission', 'submissions']);
    for (const s of report.sections) {
      assert.deepEqual(Object.keys(s), ['role', 'host', 'address', 'port', 'findings']);
      for (const f of s.findings) {
        assert.deepEqual(Object.keys(f), f.fix === undefined ? ['check', 'status', 'message'] : ['check', 'status', 'message', 'fix']);
        assert.ok(['PASS', 'WARN', 'FAIL', 'INFO'].includes(f.status));
        assert.equal(f.fix !== undefined, f.status === 'WARN' || f.status === 'FAIL', f.check);
      }
    }
    assert.deepEqual(Object.keys(report.sent), ['connections', 'commands', 'recipientsTried', 'messages']);
    assert.deepEqual(Object.keys(report.counts), ['PASS', 'WARN', 'FAIL', 'INFO']);

    // Every relay form, one by one, refused on every port.
    for (const s of report.sections) {
      for (const name of RELAY_FORMS) {
        const f = s.findings.find((x) => x.check === `relay.${name}`);
        assert.equal(f?.status, 'PASS', `${s.role} relay.${name}: ${f?.message}`);
      }
    }
    const mx = report.sections[0]!.findings;
    const status = (check: string): string | undefined => mx.find((f) => f.check === check)?.status;
    assert.equal(status('tls.starttls'), 'PASS');
    assert.equal(status('tls.version.tlsv1'), 'PASS');
    assert.equal(status('auth.before-tls'), 'PASS');
    assert.equal(status('starttls-injection'), 'PASS');
    for (const seq of ['lf-dot-lf', 'cr-dot-cr', 'crlf-dot-lf', 'lf-dot-crlf']) assert.equal(status(`smuggling.${seq}`), 'PASS', seq);
    const submission = report.sections[1]!.findings;
    for (const mechanism of ['plain', 'login', 'scram-sha-1', 'scram-sha-256', 'scram-sha-256-plus']) {
      assert.equal(submission.find((f) => f.check === `auth.login.${mechanism}`)?.status, 'PASS', mechanism);
    }
    assert.equal(submission.find((f) => f.check === 'enumeration.rcpt')?.status, 'PASS');
    assert.equal(submission.find((f) => f.check === 'auth.sender-mismatch')?.status, 'PASS');
    // The one message the probe sent: Postern reads it to the final dot, then refuses it for its
    // bare line ends, so nothing is delivered.
    assert.deepEqual(report.sent.messages, [{ to: USER, port: server.port('mx'), purpose: 'SMTP smuggling test' }]);
    assert.equal(status('smuggling.message'), 'PASS');
    assert.deepEqual(instance.readMaildir(USER), []);
    assert.equal(status('connection.fcrdns'), 'PASS');
    assert.equal(status('connection.banner-ptr'), 'PASS');
  });

  test('the text report has a section per port and says what was sent', async () => {
    const result = await runPostern([...args(), '--only', 'mx,submissions'], instance.root);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^== MX: mx\.postern\.test \[127\.0\.0\.1\] port \d+$/m);
    assert.match(result.stdout, /^== submissions \(implicit TLS\): /m);
    assert.doesNotMatch(result.stdout, /^== submission: /m);
    assert.match(result.stdout, /^PASS  relay\.percent-hack: /m);
    assert.match(result.stdout, /^Sent: \d+ connections, \d+ commands; \d+ RCPT addresses tried, each followed by RSET; no message sent\.$/m);
  });

  test('usage errors exit 2 with one line', async () => {
    for (const [extra, pattern] of [
      [['--mx', '99999'], /--mx 99999 is not a port/],
      [['--only', 'mx,pop3'], /"pop3" is not one of/],
      [['--user', USER], /--user needs --password-stdin/],
      [['--bogus'], /unknown option/],
    ] as const) {
      const result = await runPostern([...args(), ...extra], instance.root);
      assert.equal(result.code, 2, `${extra.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    }
    const unknownHost = await runPostern(['probe', 'nowhere.postern.test', '--dns', dns.address], instance.root);
    assert.equal(unknownHost.code, 2);
    assert.match(unknownHost.stderr, /^postern: nowhere\.postern\.test has no A or AAAA record/);
  });
});

describe('postern probe against a server open to STARTTLS injection', () => {
  test('a command pipelined behind STARTTLS and run after the handshake is a FAIL', async () => {
    const dns = await TestDnsServer.start();
    dns.set('broken.probe.test', [{ type: 'A', address: '127.0.0.1' }]);
    const server = await InjectableSmtpServer.start(await makeCertificate('broken.probe.test'), 'broken.probe.test');
    try {
      const result = await runPostern(['probe', 'broken.probe.test', '--only', 'mx', '--mx', String(server.port), '--dns', dns.address, '--json'], process.cwd());
      assert.equal(result.code, 1, result.stderr);
      const report = JSON.parse(result.stdout) as JsonReport;
      const injection = finding(report, 'starttls-injection');
      assert.equal(injection.status, 'FAIL', injection.message);
      assert.match(injection.message, /NOOP sent in clear text behind STARTTLS was run after the TLS handshake/);
    } finally {
      await server.close();
      await dns.close();
    }
  });
});
