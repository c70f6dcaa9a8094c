// Runs the real `bin/postern.js dns`, and has BIND's own zone checker read what it prints.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliHarness } from '../../test/support/cli-harness.js';
import { requireTool, runTool } from '../../test/support/external-tool.js';
import { runPostern } from '../../test/support/postern-process.js';
import { dkimKeyPath, parseDkimKey } from '../dkim/dkim-key.js';
import { dkimRecord } from '../dkim/dkim-record.js';

const DOMAIN = 'example.test';

let dir: string;
let config: string;

const { succeeds, fails } = cliHarness(() => ({ config, dir }));

/** The zone-file lines of the output that are records (the rest are comments). */
function recordLines(zone: string): string[] {
  return zone.split('\n').filter((l) => l !== '' && !l.startsWith(';')).map((l) => l.replace(/\s+/g, ' '));
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-cli-dns-'));
  // As root the CLI becomes "nobody", which must be able to enter the directory (mkdtemp: 0700).
  chmodSync(dir, 0o755);
  config = join(dir, 'postern.toml');
  // A production-shaped configuration: public addresses (documentation ranges, never bound by
  // this test) and the standard ports, IMAP through Dovecot, no plain POP3.
  writeFileSync(
    config,
    [
      'hostname = "mail.example.test"',
      'data_dir = "data"',
      '[listen]',
      'mx = ["192.0.2.25:25", "[2001:db8::25]:25"]',
      'submission = ["0.0.0.0:587"]',
      'submissions = ["0.0.0.0:465"]',
      'pop3 = []',
      'pop3s = ["0.0.0.0:995"]',
      'http = ["0.0.0.0:80"]',
      'https = ["0.0.0.0:443"]',
      '[dovecot]',
      'imaps = ["0.0.0.0:993"]',
      '[mta_sts]',
      'mode = "enforce"',
      '[log]',
      'level = "warn"',
      '',
    ].join('\n'),
  );
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('postern dns', () => {
  test('the domain must be a valid name and a local domain', async () => {
    await fails(/^postern: "not a domain" is not a valid domain name\n$/, 'dns', 'not a domain');
    await fails(/^postern: "example\.test" is not a local domain; add it first \(postern domain add example\.test\)\n$/, 'dns', 'Example.TEST');
    await succeeds('domain', 'add', DOMAIN);
  });

  test('without a DKIM key: every other record, and a note that says how to make the key', async () => {
    const zone = await succeeds('dns', DOMAIN);
    assert.match(zone, /^; NOTE: example\.test has no DKIM key \(selector "postern"\), so its mail goes out unsigned/m);
    assert.match(zone, /`postern dkim generate example\.test`/);
    assert.doesNotMatch(zone, /_domainkey/);
    assert.ok(recordLines(zone).includes('example.test. 3600 IN MX 10 mail.example.test.'), zone);
  });

  test('with a key: the DKIM record is the key the signer reads, and the records are as configured', async () => {
    await succeeds('dkim', 'generate', DOMAIN, '--algorithm', 'rsa');
    const zone = await succeeds('dns', DOMAIN);
    assert.doesNotMatch(zone, /NOTE/, 'nothing left to do');
    const key = parseDkimKey(readFileSync(dkimKeyPath(join(dir, 'data', 'dkim'), DOMAIN, 'postern')), DOMAIN, 'postern');
    const dkim = dkimRecord(key);
    assert.ok(dkim.strings.length >= 2, 'an RSA 2048 key takes more than one string');
    const lines = recordLines(zone);
    assert.deepEqual(lines, [
      'example.test. 3600 IN MX 10 mail.example.test.',
      'mail.example.test. 3600 IN A 192.0.2.25',
      'mail.example.test. 3600 IN AAAA 2001:db8::25',
      'example.test. 3600 IN TXT "v=spf1 mx -all"',
      `postern._domainkey.example.test. 3600 IN TXT ${dkim.strings.map((s) => `"${s}"`).join(' ')}`,
      '_dmarc.example.test. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.test"',
      '_imaps._tcp.example.test. 3600 IN SRV 0 1 993 mail.example.test.',
      '_imap._tcp.example.test. 3600 IN SRV 0 0 0 .',
      '_pop3s._tcp.example.test. 3600 IN SRV 20 1 995 mail.example.test.',
      '_pop3._tcp.example.test. 3600 IN SRV 0 0 0 .',
      '_submissions._tcp.example.test. 3600 IN SRV 0 1 465 mail.example.test.',
      '_submission._tcp.example.test. 3600 IN SRV 10 1 587 mail.example.test.',
      'autoconfig.example.test. 3600 IN CNAME mail.example.test.',
      'autodiscover.example.test. 3600 IN CNAME mail.example.test.',
      '_autodiscover._tcp.example.test. 3600 IN SRV 0 1 443 mail.example.test.',
      'mta-sts.example.test. 3600 IN CNAME mail.example.test.',
      lines.find((l) => l.startsWith('_mta-sts.')) ?? '_mta-sts line missing',
      '_smtp._tls.example.test. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.test"',
    ]);
    assert.match(lines.find((l) => l.startsWith('_mta-sts.')) ?? '', /^_mta-sts\.example\.test\. 3600 IN TXT "v=STSv1; id=[A-Za-z0-9]{1,32}"$/);
    assert.match(zone, /^; {3}mode: enforce$/m, 'the policy served at the URL is shown');
    assert.equal(await succeeds('dns', 'EXAMPLE.test.'), zone, 'the name is normalized');
  });

  test('--json: one array of records, notes on stderr', async () => {
    const records = JSON.parse(await succeeds('dns', DOMAIN, '--json')) as Record<string, unknown>[];
    const zone = recordLines(await succeeds('dns', DOMAIN));
    assert.equal(records.length, zone.length, 'the same records as the zone text');
    const fields: Record<string, string[]> = {
      A: ['address'],
      AAAA: ['address'],
      MX: ['preference', 'exchange'],
      TXT: ['strings'],
      SRV: ['priority', 'weight', 'port', 'target'],
      CNAME: ['target'],
    };
    for (const r of records) {
      const type = r.type as string;
      assert.deepEqual(Object.keys(r), ['name', 'type', 'ttl', ...(fields[type] ?? ['?']), 'comment']);
      assert.doesNotMatch(r.name as string, /\.$/, 'names without the final dot');
    }
    assert.deepEqual(records.find((r) => r.name === '_pop3._tcp.example.test'), {
      name: '_pop3._tcp.example.test',
      type: 'SRV',
      ttl: 3600,
      priority: 0,
      weight: 0,
      port: 0,
      target: '.',
      comment: records.find((r) => r.name === '_pop3._tcp.example.test')?.comment,
    });

    const other = join(dir, 'no-web.toml');
    writeFileSync(other, 'data_dir = "data"\nhostname = "mail.example.test"\n[listen]\nhttps = []\n[dkim]\nselector = "new"\n[log]\nlevel = "warn"\n');
    const r = await runPostern(['dns', DOMAIN, '--json', '--config', other], dir);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stderr.split('\n').filter((l) => l !== '');
    assert.ok(notes.length >= 3, r.stderr);
    for (const note of notes) assert.match(note, /^postern: note: /);
    assert.ok(notes.some((n) => /no DKIM key \(selector "new"\).*postern dkim generate example\.test/.test(n)), r.stderr);
    assert.ok(Array.isArray(JSON.parse(r.stdout)), 'stdout is still the array alone');
  });

  test('BIND\'s named-checkzone accepts the text as a zone, with its strictest checks', async () => {
    requireTool('named-checkzone', 'bind9-utils');
    const zone = await succeeds('dns', DOMAIN);
    const file = join(dir, 'example.test.zone');
    // The SOA and NS records a real zone has around what `postern dns` prints.
    writeFileSync(
      file,
      [
        '$TTL 3600',
        'example.test. IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 3600',
        'example.test. IN NS ns1.example.test.',
        'ns1.example.test. IN A 192.0.2.53',
        zone,
      ].join('\n'),
    );
    // -i full: MX and SRV targets must have addresses in the zone; -M/-S fail: and not be CNAMEs.
    const check = await runTool('named-checkzone', ['-i', 'full', '-k', 'fail', '-m', 'fail', '-M', 'fail', '-n', 'fail', '-S', 'fail', '-r', 'fail', DOMAIN, file]);
    assert.equal(check.code, 0, `${check.stdout}${check.stderr}`);
    assert.match(check.stdout, /^OK$/m);
    assert.doesNotMatch(check.stdout + check.stderr, /warning|ignored/i);
    // The checker does check: a record whose MX target has no address fails it.
    writeFileSync(file, `${readFileSync(file, 'utf8')}broken.example.test. 3600 IN MX 10 nowhere.example.test.\n`);
    assert.notEqual((await runTool('named-checkzone', ['-i', 'full', '-m', 'fail', '-M', 'fail', DOMAIN, file])).code, 0);
  });
});
