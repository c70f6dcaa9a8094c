// `postern doctor` against the real server and a real DNS server: the zone `postern dns` prints
// (plus the address and PTR records an operator adds) passes; each broken zone fails with the
// record that fixes it, and blocklist answers are told apart from Spamhaus' error codes. The
// server listens on 127.0.0.25, which --address names as its public address.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'smol-toml';
import { dkimRecord } from '../src/dkim/dkim-record.js';
import { generateDkimPrivateKey, parseDkimKey } from '../src/dkim/dkim-key.js';
import { TestDnsServer, type DnsRecord } from './support/dns-server.js';
import { freePort, TestPostfix } from './support/postfix.js';
import { PosternProcess, runPostern, type CliResult } from './support/postern-process.js';
import { makeCertificate, writeCertificate } from './support/test-certificate.js';

const DOMAIN = 'doctor.test';
const HOST = `mx.${DOMAIN}`;
const ADDRESS = '127.0.0.25';
const PTR_NAME = '25.0.0.127.in-addr.arpa';
const DNSBL_NAME = '25.0.0.127.zen.spamhaus.org';

/** The JSON report, as README documents it. */
interface Report {
  hostname: string;
  ok: boolean;
  counts: Record<string, number>;
  findings: { domain: string | null; section: string; check: string; status: string; message: string; fix?: string }[];
}

type PublishedRecord = DnsRecord & { readonly name: string };

describe('postern doctor', () => {
  let dir: string;
  let configPath: string;
  let certPath: string;
  let dns: TestDnsServer;
  let server: PosternProcess | undefined;
  let published: PublishedRecord[];

  const postern = (...args: string[]): Promise<CliResult> =>
    // The test certificate is its own CA: trusted like a real one, so the MTA-STS fetch verifies it.
    runPostern([...args, '--config', configPath], dir, '', { NODE_EXTRA_CA_CERTS: certPath });
  const doctor = async (...args: string[]): Promise<{ code: number | null; report: Report }> => {
    const r = await postern('doctor', '--json', '--address', ADDRESS, ...args);
    assert.equal(r.stderr, '', 'nothing on stderr');
    return { code: r.code, report: JSON.parse(r.stdout) as Report };
  };
  const findings = (report: Report, check: string): Report['findings'] => report.findings.filter((f) => f.check === check);

  /** The good zone: what `postern dns` prints, the server's address, and its PTR. */
  const publishGoodZone = (): void => {
    for (const name of new Set([...published.map((r) => r.name), HOST, PTR_NAME, DNSBL_NAME])) dns.remove(name);
    for (const record of published) dns.add(record.name, record);
    dns.add(HOST, { type: 'A', address: ADDRESS });
    dns.set(PTR_NAME, [{ type: 'PTR', target: HOST }]);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-doctor-'));
    // As root the server and CLI become "nobody", which must enter the directory (mkdtemp: 0700).
    chmodSync(dir, 0o755);
    dns = await TestDnsServer.start();
    const names = [HOST, `mta-sts.${DOMAIN}`, `autoconfig.${DOMAIN}`, `autodiscover.${DOMAIN}`];
    const cert = writeCertificate(dir, 'mail', await makeCertificate(HOST, names));
    certPath = cert.cert;
    const port = (): Promise<number> => freePort(ADDRESS);
    configPath = join(dir, 'postern.toml');
    // Ports picked free, then bound by the server: another test may take one in between.
    const writeConfig = async (): Promise<void> => {
      writeFileSync(
        configPath,
        stringify({
          hostname: HOST,
          data_dir: join(dir, 'data'),
          user: '',
          listen: {
            mx: [`${ADDRESS}:${await port()}`],
            submission: [`${ADDRESS}:${await port()}`],
            submissions: [`${ADDRESS}:${await port()}`],
            pop3: [],
            pop3s: [],
            http: [`${ADDRESS}:${await port()}`],
            https: [`${ADDRESS}:${await port()}`],
          },
          tls: { cert: cert.cert, key: cert.key },
          relay: { dns_servers: [dns.address] },
          mta_sts: { mode: 'enforce' },
          log: { level: 'info', format: 'json' },
        }),
      );
    };
    await writeConfig();
    const ok = async (...args: string[]): Promise<void> => {
      const r = await runPostern([...args, '--config', configPath], dir, 'correct horse battery staple\n');
      assert.equal(r.code, 0, `postern ${args.join(' ')}: ${r.stderr}`);
    };
    await ok('domain', 'add', DOMAIN);
    await ok('user', 'add', `admin@${DOMAIN}`, '--password-stdin');
    await ok('alias', 'add', `postmaster@${DOMAIN}`, `admin@${DOMAIN}`);
    await ok('dkim', 'generate', DOMAIN);
    const printed = await runPostern(['dns', DOMAIN, '--json', '--config', configPath], dir);
    assert.equal(printed.code, 0, printed.stderr);
    published = JSON.parse(printed.stdout) as PublishedRecord[];
    for (let attempt = 1; ; attempt++) {
      try {
        server = await PosternProcess.spawn(configPath);
        break;
      } catch (err) {
        // Only that race is retried, with fresh ports: any other failure is the test's.
        if (attempt === 3 || !/address already in use/.test(String(err))) throw err;
        await writeConfig();
      }
    }
  });

  after(async () => {
    try {
      if (server) assert.equal(await server.stop(), 0, 'SIGTERM stops the server cleanly');
    } finally {
      await dns?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the zone `postern dns` prints, with address and PTR, passes; the JSON shape is pinned', async () => {
    publishGoodZone();
    const { code, report } = await doctor();
    assert.equal(code, 0, JSON.stringify(report.findings.filter((f) => f.status === 'FAIL'), null, 2));
    assert.deepEqual(Object.keys(report), ['hostname', 'ok', 'counts', 'findings']);
    assert.equal(report.hostname, HOST);
    assert.equal(report.ok, true);
    assert.deepEqual(Object.keys(report.counts), ['PASS', 'WARN', 'FAIL', 'UNKNOWN', 'INFO']);
    assert.equal(report.counts.FAIL, 0);
    for (const f of report.findings) {
      assert.deepEqual(Object.keys(f), f.fix === undefined ? ['domain', 'section', 'check', 'status', 'message'] : ['domain', 'section', 'check', 'status', 'message', 'fix']);
    }
    // Which checks run, where, in what order: a stable interface for scripts.
    const shape = report.findings.map((f) => `${f.domain ?? '-'} ${f.section} ${f.check}${f.check === 'disk.free' ? '' : ` ${f.status}`}`);
    const srv = (n: number): string[] => new Array<string>(n).fill(`${DOMAIN} dns dns.srv PASS`);
    assert.deepEqual(shape, [
      '- dns dns.ptr PASS',
      '- tls tls.key PASS',
      // makeCertificate's certificates are valid for a day.
      '- tls tls.expiry WARN',
      '- tls tls.names PASS',
      '- tls tls.names PASS',
      '- tls tls.names PASS',
      '- tls tls.names PASS',
      '- listeners listener PASS',
      '- listeners listener PASS',
      '- listeners listener PASS',
      '- listeners listener PASS',
      '- listeners listener PASS',
      '- listeners probe PASS',
      '- listeners probe PASS',
      '- listeners probe PASS',
      '- dnsbl dnsbl PASS',
      '- disk disk.free',
      `${DOMAIN} dns dns.mx PASS`,
      `${DOMAIN} dns dns.address PASS`,
      `${DOMAIN} dns dns.spf PASS`,
      `${DOMAIN} dns dns.dkim PASS`,
      `${DOMAIN} dns dns.dmarc PASS`,
      `${DOMAIN} dns dns.tls-rpt PASS`,
      `${DOMAIN} dns dns.mta-sts PASS`,
      ...srv(7),
      `${DOMAIN} dns dns.cname PASS`,
      `${DOMAIN} dns dns.cname PASS`,
      `${DOMAIN} dns dns.cname PASS`,
      // The test's https port is not 443, which `postern dns` notes.
      `${DOMAIN} dns dns.note INFO`,
      `${DOMAIN} dns mta-sts.policy PASS`,
      `${DOMAIN} mail mail.postmaster PASS`,
    ]);
    assert.match(findings(report, 'dns.dmarc')[0]?.message ?? '', /p=none/);
    assert.match(findings(report, 'mail.postmaster')[0]?.message ?? '', new RegExp(`delivers to admin@${DOMAIN}`));
    assert.match(findings(report, 'tls.expiry')[0]?.fix ?? '', /^renew /);
  });

  test('the text report groups by server and domain and ends with the counts', async () => {
    publishGoodZone();
    const r = await postern('doctor', '--address', ADDRESS, '--domain', DOMAIN.toUpperCase());
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, new RegExp(`^Server ${HOST}\n  DNS\n    PASS    ${ADDRESS} and ${HOST} name each other`));
    assert.match(r.stdout, new RegExp(`\n\nDomain ${DOMAIN}\n  DNS\n    PASS    the MX of ${DOMAIN} is ${HOST}\n`));
    assert.match(r.stdout, /\n    PASS    _pop3\._tcp\.doctor\.test says the service is not offered \(target "\."\)\n/);
    assert.match(r.stdout, /\n    INFO    \[listen\] https is on port \d+, but senders fetch the MTA-STS policy/);
    assert.match(r.stdout, /\n\n0 FAIL, 1 WARN, 0 UNKNOWN, \d+ PASS, 1 INFO: nothing fails\n$/);
  });

  test('a missing PTR fails, with the record to ask for', async () => {
    publishGoodZone();
    dns.remove(PTR_NAME);
    const { code, report } = await doctor();
    assert.equal(code, 1);
    const [ptr] = findings(report, 'dns.ptr');
    assert.equal(ptr?.status, 'FAIL');
    assert.match(ptr?.message ?? '', /127\.0\.0\.25 has no PTR record/);
    assert.match(ptr?.fix ?? '', /25\.0\.0\.127\.in-addr\.arpa\. IN PTR mx\.doctor\.test\.$/);
  });

  test('a PTR naming another host fails too', async () => {
    publishGoodZone();
    dns.set(PTR_NAME, [{ type: 'PTR', target: 'host-25.provider.test' }]);
    const { report } = await doctor();
    assert.equal(findings(report, 'dns.ptr')[0]?.status, 'FAIL');
    assert.match(findings(report, 'dns.ptr')[0]?.message ?? '', /is host-25\.provider\.test, not mx\.doctor\.test/);
  });

  test('SPF without our address fails, and the fix is the record `postern dns` prints', async () => {
    publishGoodZone();
    dns.set(DOMAIN, [
      ...published.filter((r) => r.name === DOMAIN && r.type !== 'TXT'),
      { type: 'TXT', strings: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    ]);
    const { code, report } = await doctor();
    assert.equal(code, 1);
    const [spf] = findings(report, 'dns.spf');
    assert.equal(spf?.status, 'FAIL');
    assert.match(spf?.message ?? '', /does not authorise 127\.0\.0\.25 \(fail: domain of postmaster@doctor\.test does not designate 127\.0\.0\.25 as permitted sender\)/);
    assert.equal(spf?.fix, `publish: ${DOMAIN}. 3600 IN TXT   "v=spf1 mx -all"`);
  });

  test('SPF through include: and a network that holds our address passes', async () => {
    publishGoodZone();
    dns.set(DOMAIN, [
      ...published.filter((r) => r.name === DOMAIN && r.type !== 'TXT'),
      { type: 'TXT', strings: ['v=spf1 include:_spf.', 'provider.test ~all'] },
    ]);
    dns.set('_spf.provider.test', [{ type: 'TXT', strings: ['v=spf1 ip4:192.0.2.1 ip4:127.0.0.0/24 -all'] }]);
    const { report } = await doctor();
    assert.equal(findings(report, 'dns.spf')[0]?.status, 'PASS');
  });

  test('a DKIM record with another key fails; the fix is our record', async () => {
    publishGoodZone();
    const ours = published.find((r) => r.name.endsWith(`._domainkey.${DOMAIN}`));
    assert.ok(ours?.type === 'TXT');
    const other = dkimRecord(parseDkimKey(generateDkimPrivateKey('ed25519'), DOMAIN, 'postern'));
    dns.set(ours.name, [{ type: 'TXT', strings: other.strings }]);
    const { code, report } = await doctor();
    assert.equal(code, 1);
    const [dkim] = findings(report, 'dns.dkim');
    assert.equal(dkim?.status, 'FAIL');
    assert.match(dkim?.message ?? '', /publishes a different key than the one that signs our mail/);
    assert.ok(ours.strings.every((part) => dkim?.fix?.includes(`"${part}"`)), `the fix holds our key: ${dkim?.fix}`);
    assert.ok(dkim?.fix?.startsWith(`publish: ${ours.name}. 3600 IN TXT `));
  });

  test('DMARC absent fails, with the record to publish', async () => {
    publishGoodZone();
    dns.remove(`_dmarc.${DOMAIN}`);
    const { code, report } = await doctor();
    assert.equal(code, 1);
    const [dmarc] = findings(report, 'dns.dmarc');
    assert.equal(dmarc?.status, 'FAIL');
    assert.equal(dmarc?.fix, `publish: _dmarc.${DOMAIN}. 3600 IN TXT   "v=DMARC1; p=none; rua=mailto:postmaster@${DOMAIN}"`);
  });

  test('a stale MTA-STS id fails: senders would keep an old policy', async () => {
    publishGoodZone();
    dns.set(`_mta-sts.${DOMAIN}`, [{ type: 'TXT', strings: ['v=STSv1; id=20240101'] }]);
    const { report } = await doctor();
    const [sts] = findings(report, 'dns.mta-sts');
    assert.equal(sts?.status, 'FAIL');
    assert.match(sts?.message ?? '', /says id=20240101, but the policy served has id=/);
  });

  test('a DNSBL listing (127.0.0.2) fails, and a Spamhaus error (127.255.255.254) is UNKNOWN', async () => {
    publishGoodZone();
    dns.set(DNSBL_NAME, [{ type: 'A', address: '127.0.0.2' }]);
    let { code, report } = await doctor();
    assert.equal(code, 1);
    assert.equal(findings(report, 'dnsbl')[0]?.status, 'FAIL');
    assert.match(findings(report, 'dnsbl')[0]?.message ?? '', /127\.0\.0\.25 is listed in zen\.spamhaus\.org \(127\.0\.0\.2, SBL/);

    dns.set(DNSBL_NAME, [{ type: 'A', address: '127.255.255.254' }]);
    ({ code, report } = await doctor());
    assert.equal(code, 0, 'an error code is no listing');
    assert.equal(findings(report, 'dnsbl')[0]?.status, 'UNKNOWN');
    assert.match(findings(report, 'dnsbl')[0]?.message ?? '', /127\.255\.255\.254: the query came through a public or open resolver/);
  });

  test('--changes prints only what changed since the saved report', async () => {
    publishGoodZone();
    // In data_dir: the CLI runs as the service account, which owns it.
    const state = join(dir, 'data', 'doctor-last.json');
    const run = async (): Promise<CliResult> => postern('doctor', '--address', ADDRESS, '--changes', state);
    let r = await run();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^server tls\.expiry: PASS -> WARN: \S+mail\.pem expires in 0 days [^\n]+\n    fix: renew [^\n]+\n$/, 'a first run: the problems');
    r = await run();
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', ''], 'nothing changed, nothing said');
    dns.remove(`_dmarc.${DOMAIN}`);
    r = await run();
    assert.equal(r.code, 1);
    assert.equal(
      r.stdout,
      `${DOMAIN} dns.dmarc: PASS -> FAIL: _dmarc.${DOMAIN} has no record\n` +
        `    fix: publish: _dmarc.${DOMAIN}. 3600 IN TXT   "v=DMARC1; p=none; rua=mailto:postmaster@${DOMAIN}"\n`,
    );
    publishGoodZone();
    r = await run();
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${DOMAIN} dns.dmarc: FAIL -> PASS: DMARC: v=DMARC1; p=none; rua=mailto:postmaster@${DOMAIN}\n`);
    writeFileSync(state, 'not json');
    r = await run();
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^postern: --changes: "[^"]+doctor-last\.json" is not a report saved by postern doctor [^\n]+; remove it to start afresh\n$/);
  });

  test('with the server stopped, every listener and the MTA-STS policy fail', async () => {
    publishGoodZone();
    assert.equal(await server?.stop(), 0, 'SIGTERM stops the server cleanly');
    server = undefined;
    const { code, report } = await doctor();
    assert.equal(code, 1);
    const listeners = findings(report, 'listener');
    assert.equal(listeners.length, 5);
    for (const l of listeners) {
      assert.equal(l.status, 'FAIL');
      assert.match(l.message, /^listen\.\w+ 127\.0\.0\.25:\d+: connection refused: nothing listens there$/);
      assert.match(l.fix ?? '', /^start `postern serve`/);
    }
    const [policy] = findings(report, 'mta-sts.policy');
    assert.equal(policy?.status, 'FAIL');
    assert.match(policy?.message ?? '', /^senders cannot fetch https:\/\/mta-sts\.doctor\.test\/\.well-known\/mta-sts\.txt: cannot connect/);
  });

  test('bad command lines exit 2 with one line', async () => {
    for (const [args, message] of [
      [['--address', 'mx.doctor.test'], /^postern: --address "mx\.doctor\.test" is not an IP address/],
      [['--domain', 'elsewhere.test'], /^postern: "elsewhere\.test" is not a local domain/],
      [['--no-such-option'], /^postern: unknown option '--no-such-option'/],
    ] as const) {
      const r = await postern('doctor', ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^postern: [^\n]+\n$/);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
  });
});

describe('postern doctor: the probe of our own listeners', { skip: TestPostfix.available() }, () => {
  let dir: string;
  let postfix: TestPostfix;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-doctor-relay-'));
    chmodSync(dir, 0o755);
    // The doctor probes whatever [listen] mx names; here that is a Postfix relaying for anyone.
    postfix = await TestPostfix.start({ hostname: 'open.doctor.test', domains: ['open.doctor.test'], misconfigured: { openRelay: true } });
  });

  after(async () => {
    await postfix?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an open relay on the mx listener fails, naming each address form it relayed', async () => {
    const configPath = join(dir, 'postern.toml');
    writeFileSync(
      configPath,
      stringify({
        hostname: 'open.doctor.test',
        data_dir: join(dir, 'data'),
        user: '',
        listen: { mx: [`127.0.0.1:${postfix.port}`], submission: [], submissions: [], pop3: [], pop3s: [], http: [], https: [], metrics: [] },
        log: { level: 'warn', format: 'json' },
      }),
    );
    const r = await runPostern(['doctor', '--json', '--address', '127.0.0.1', '--dnsbl', 'dnsbl.invalid', '--config', configPath], dir);
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    const probe = report.findings.filter((f) => f.check.startsWith('probe'));
    assert.ok(probe.length > 0, 'the probe ran');
    const failed = probe.filter((f) => f.status === 'FAIL').map((f) => f.check);
    assert.ok(failed.includes('probe.relay.plain'), failed.join(', '));
    assert.ok(failed.includes('probe.relay.upper-case'), failed.join(', '));
    for (const f of probe.filter((p) => p.status === 'FAIL')) assert.match(f.message, /^listen\.mx 127\.0\.0\.1:\d+: /);
    assert.ok(!probe.some((f) => f.status === 'PASS'), 'no "no open relay" line beside the failures');
  });
});
