import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configSchema } from '../config/schema.js';
import { generateDkimPrivateKey, parseDkimKey } from '../dkim/dkim-key.js';
import { dkimRecord } from '../dkim/dkim-record.js';
import { domainRecords, RECORD_TTL, type PublishedRecord } from './dns-records.js';
import { mtaStsPolicy } from './mta-sts-policy.js';
import { characterString, zoneFileText, zoneLine } from './zone-file.js';

const DOMAIN = 'example.test';
const config = (extra: object = {}) => configSchema.parse({ hostname: 'Mail.Example.test', ...extra });
const ed25519 = parseDkimKey(generateDkimPrivateKey('ed25519'), DOMAIN, 'postern');

function find(records: readonly PublishedRecord[], name: string, type: PublishedRecord['type']): PublishedRecord[] {
  return records.filter((r) => r.name === name && r.type === type);
}

function text(records: readonly PublishedRecord[], name: string): string[] {
  return find(records, name, 'TXT').map((r) => (r.type === 'TXT' ? r.strings.join('') : ''));
}

/** "label priority weight port target" for each SRV record, in order. */
function srvTable(records: readonly PublishedRecord[]): string[] {
  return records.flatMap((r) => (r.type === 'SRV' ? [`${r.name} ${r.priority} ${r.weight} ${r.port} ${r.target}`] : []));
}

describe('domainRecords', () => {
  test('MX, SPF, DKIM, DMARC and TLS-RPT for a domain with a key; every record has the TTL', () => {
    const { records } = domainRecords(config(), DOMAIN, ed25519);
    assert.deepEqual(
      find(records, DOMAIN, 'MX').map((r) => (r.type === 'MX' ? [r.preference, r.exchange] : [])),
      [[10, 'mail.example.test']],
    );
    assert.deepEqual(text(records, DOMAIN), ['v=spf1 mx -all']);
    assert.deepEqual(find(records, 'postern._domainkey.example.test', 'TXT').map((r) => r.type === 'TXT' && r.strings), [dkimRecord(ed25519).strings]);
    assert.deepEqual(text(records, '_dmarc.example.test'), ['v=DMARC1; p=none; rua=mailto:postmaster@example.test']);
    assert.deepEqual(text(records, '_smtp._tls.example.test'), ['v=TLSRPTv1; rua=mailto:postmaster@example.test']);
    for (const r of records) {
      assert.equal(r.ttl, RECORD_TTL);
      assert.ok(r.comment.length > 0, `${r.name} ${r.type} says what it is for`);
      assert.ok(!r.name.endsWith('.'), r.name);
    }
  });

  test('every RFC 6186/8314 SRV label: offered ones point at the client host, the others at "."', () => {
    const { records } = domainRecords(
      config({
        clients: { host: 'IMAP.example.test' },
        dovecot: { imaps: ['0.0.0.0:993'] },
        listen: { pop3: [], pop3s: ['0.0.0.0:995'], submission: ['0.0.0.0:587'], submissions: ['0.0.0.0:465'], https: ['0.0.0.0:443'] },
      }),
      DOMAIN,
      ed25519,
    );
    assert.deepEqual(srvTable(records), [
      // RFC 8314 section 5.1: implicit TLS preferred; RFC 6186 section 3.4: IMAP and POP3 ranked together.
      '_imaps._tcp.example.test 0 1 993 imap.example.test',
      '_imap._tcp.example.test 0 0 0 .',
      '_pop3s._tcp.example.test 20 1 995 imap.example.test',
      '_pop3._tcp.example.test 0 0 0 .',
      '_submissions._tcp.example.test 0 1 465 imap.example.test',
      '_submission._tcp.example.test 10 1 587 imap.example.test',
      '_autodiscover._tcp.example.test 0 1 443 imap.example.test',
    ]);
    const cnames = records.flatMap((r) => (r.type === 'CNAME' ? [`${r.name} ${r.target}`] : []));
    assert.deepEqual(cnames, [
      'autoconfig.example.test imap.example.test',
      'autodiscover.example.test imap.example.test',
      // The policy host is the MX's own server.
      'mta-sts.example.test mail.example.test',
    ]);
  });

  test('MTA-STS: the TXT id is the served policy\'s, and the policy comes along', () => {
    const c = config({ listen: { https: ['0.0.0.0:443'] }, mta_sts: { mode: 'enforce' } });
    const result = domainRecords(c, DOMAIN, ed25519);
    assert.deepEqual(text(result.records, '_mta-sts.example.test'), [`v=STSv1; id=${mtaStsPolicy(c).id}`]);
    assert.equal(result.mtaSts?.url, 'https://mta-sts.example.test/.well-known/mta-sts.txt');
    assert.equal(result.mtaSts?.policy.text, mtaStsPolicy(c).text);
    assert.deepEqual(result.notes, [
      'mail.example.test must have A (and AAAA) records with this server\'s public addresses; [listen] names none (0.0.0.0, [::], loopback and private addresses do not tell them)',
    ]);
  });

  test('notes: an MX host outside [mta_sts] mx, HTTPS off port 443, no HTTPS at all', () => {
    const mismatch = domainRecords(config({ listen: { https: ['0.0.0.0:443'] }, mta_sts: { mx: ['*.other.test'] } }), DOMAIN, ed25519);
    assert.ok(mismatch.notes.some((n) => /the MX host mail\.example\.test matches none of \[mta_sts\] mx \(\*\.other\.test\)/.test(n)), mismatch.notes.join('\n'));
    // RFC 8461 section 4.1: "*.example.test" covers mail.example.test.
    const wildcard = domainRecords(config({ listen: { https: ['0.0.0.0:443'] }, mta_sts: { mx: ['*.example.test'] } }), DOMAIN, ed25519);
    assert.ok(!wildcard.notes.some((n) => /matches none/.test(n)));

    const offPort = domainRecords(config({ listen: { https: ['0.0.0.0:8443'] } }), DOMAIN, ed25519);
    assert.ok(offPort.notes.some((n) => /\[listen\] https is on port 8443.*forward port 443 to 8443/.test(n)));

    const noHttps = domainRecords(config({ listen: { https: [] } }), DOMAIN, ed25519);
    assert.equal(noHttps.mtaSts, undefined);
    assert.deepEqual(
      noHttps.records.filter((r) => /mta-sts|autodiscover/.test(r.name)),
      [],
      'nothing points senders at a policy no one serves',
    );
    assert.equal(find(noHttps.records, 'autoconfig.example.test', 'CNAME').length, 1, 'autoconfig also works over plain HTTP');
    assert.ok(noHttps.notes.some((n) => /https is off/.test(n)));

    const noWeb = domainRecords(config({ listen: { https: [], http: [] } }), DOMAIN, ed25519);
    assert.equal(find(noWeb.records, 'autoconfig.example.test', 'CNAME').length, 0);
  });

  test('no DKIM key: no DKIM record, and a note that says how to make one', () => {
    const { records, notes } = domainRecords(config(), DOMAIN, undefined);
    assert.equal(records.filter((r) => r.name.includes('_domainkey')).length, 0);
    assert.ok(notes.some((n) => n.includes('`postern dkim generate example.test`')), notes.join('\n'));
    const unsigned = domainRecords(config({ dkim: { sign: false } }), DOMAIN, ed25519);
    assert.ok(unsigned.notes.some((n) => /\[dkim\] sign = false/.test(n)));
  });

  test('A/AAAA records from public listen addresses, for the MX host and the client host', () => {
    const { records, notes } = domainRecords(
      config({
        clients: { host: 'imap.example.test' },
        listen: { mx: ['192.0.2.25:25', '[2001:db8::25]:25', '127.0.0.1:25'], submission: ['10.0.0.5:587', '0.0.0.0:587'], submissions: ['[::]:465'] },
      }),
      DOMAIN,
      ed25519,
    );
    const addresses = records.flatMap((r) => (r.type === 'A' || r.type === 'AAAA' ? [`${r.name} ${r.type} ${r.address}`] : []));
    assert.deepEqual(addresses, [
      'mail.example.test A 192.0.2.25',
      'mail.example.test AAAA 2001:db8::25',
      'imap.example.test A 192.0.2.25',
      'imap.example.test AAAA 2001:db8::25',
    ]);
    assert.ok(!notes.some((n) => /must have A/.test(n)));
  });

  test('a host name that is not fully qualified gets a note', () => {
    const { notes } = domainRecords(config({ hostname: 'localhost' }), DOMAIN, ed25519);
    assert.ok(notes.some((n) => /"localhost" is not a fully qualified host name/.test(n)));
  });

  test('SPF with a smart host allows it by name, or by address', () => {
    assert.deepEqual(text(domainRecords(config({ relay: { smarthost: 'SMTP.provider.test:587' } }), DOMAIN, ed25519).records, DOMAIN), [
      'v=spf1 mx a:smtp.provider.test -all',
    ]);
    assert.deepEqual(text(domainRecords(config({ relay: { smarthost: '[192.0.2.9]:25' } }), DOMAIN, ed25519).records, DOMAIN), ['v=spf1 mx ip4:192.0.2.9 -all']);
    assert.deepEqual(text(domainRecords(config({ relay: { smarthost: '[2001:db8::9]:25' } }), DOMAIN, ed25519).records, DOMAIN), ['v=spf1 mx ip6:2001:db8::9 -all']);
  });

  test('TLS-RPT: [tls_rpt] rua, comma-separated, with "," "!" ";" inside a URI percent-encoded (RFC 8460 section 3)', () => {
    const { records } = domainRecords(config({ tls_rpt: { rua: ['mailto:tls,reports@example.test', 'https://report.example.test/tls;x!'] } }), DOMAIN, ed25519);
    assert.deepEqual(text(records, '_smtp._tls.example.test'), [
      'v=TLSRPTv1; rua=mailto:tls%2Creports@example.test,https://report.example.test/tls%3Bx%21',
    ]);
  });

  test('a TXT record longer than 255 octets is split into strings that join back', () => {
    const long = `https://report.example.test/${'x'.repeat(300)}`;
    const [record] = find(domainRecords(config({ tls_rpt: { rua: [long] } }), DOMAIN, ed25519).records, '_smtp._tls.example.test', 'TXT');
    assert.ok(record?.type === 'TXT');
    assert.equal(record.strings.length, 2);
    for (const s of record.strings) assert.ok(Buffer.byteLength(s) <= 255);
    assert.equal(record.strings.join(''), `v=TLSRPTv1; rua=${long}`);
  });
});

describe('zone file', () => {
  test('absolute names, TTL, class, and each record\'s RDATA as RFC 1035 section 5.1 writes it', () => {
    assert.equal(zoneLine({ name: 'example.test', type: 'MX', ttl: 3600, preference: 10, exchange: 'mail.example.test', comment: '' }), 'example.test. 3600 IN MX    10 mail.example.test.');
    assert.equal(
      zoneLine({ name: '_pop3._tcp.example.test', type: 'SRV', ttl: 3600, priority: 0, weight: 0, port: 0, target: '.', comment: '' }),
      '_pop3._tcp.example.test. 3600 IN SRV   0 0 0 .',
    );
    assert.equal(zoneLine({ name: 'x.test', type: 'TXT', ttl: 60, strings: ['a', 'b'], comment: '' }, 10), 'x.test.    60 IN TXT   "a" "b"');
    assert.equal(zoneLine({ name: 'x.test', type: 'AAAA', ttl: 60, address: '2001:db8::1', comment: '' }), 'x.test. 60 IN AAAA  2001:db8::1');
  });

  test('character-strings escape quotes and backslashes, and non-ASCII octets as \\DDD', () => {
    assert.equal(characterString('say "hi" \\ bye'), '"say \\"hi\\" \\\\ bye"');
    assert.equal(characterString('é'), '"\\195\\169"');
  });

  test('the text: notes and comments are ";" lines no wider than 100 columns, the policy is shown as comments', () => {
    const c = config({ listen: { https: ['0.0.0.0:443'] } });
    const zone = zoneFileText(domainRecords(c, DOMAIN, undefined));
    const lines = zone.split('\n');
    for (const line of lines.filter((l) => l.startsWith(';'))) assert.ok(line.length <= 100, line);
    // Everything that is not a record is a comment, so the whole text pastes into a zone.
    for (const line of lines.filter((l) => l !== '' && !l.startsWith(';'))) assert.match(line, /^\S+\. +3600 IN (A|AAAA|MX|TXT|SRV|CNAME) +\S/);
    assert.match(zone, /^; NOTE: example\.test has no DKIM key/m);
    assert.match(zone, /^; {3}version: STSv1\n; {3}mode: testing\n; {3}mx: mail\.example\.test\n; {3}max_age: 604800$/m);
  });
});
