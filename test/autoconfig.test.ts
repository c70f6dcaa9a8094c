// Mail programs configuring themselves, end to end: the real server process with its http and
// https listeners, asked the way Thunderbird, Outlook and Apple devices ask (curl, with the
// names pointed at the loopback ports by --connect-to, and certificates checked against a test
// trust store), every answer read by a real parser (Python's ElementTree and plistlib), and the
// MTA-STS policy fetched over HTTPS with SNI, by curl and by Postern's own MTA-STS client.

import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'smol-toml';
import { loadConfig } from '../src/config/load.js';
import { createDnsClient } from '../src/dns/resolver.js';
import { fetchPolicyText } from '../src/dns/mta-sts-fetch.js';
import { parsePolicy } from '../src/dns/mta-sts-policy.js';
import { mtaStsPolicy } from '../src/publish/mta-sts-policy.js';
import { TestDnsServer } from './support/dns-server.js';
import { requireTool, runTool } from './support/external-tool.js';
import { PosternInstance, type PosternProcess, stopAndDispose } from './support/postern-process.js';
import { child, childrenNamed, namespaceOf, parsePlist, parseXml, textOf, type XmlTree } from './support/python-parsers.js';
import { makeCertificate, writeCertificate } from './support/test-certificate.js';

const REQUEST_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006';
const RESPONSE_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a';
const ENVELOPE_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006';
/** Where the config says Dovecot listens: only handed out, never connected to here. */
const IMAPS_PORT = 10993;
const IMAP_PORT = 10143;
const PASSWORD = 'correct horse battery staple';

interface HttpAnswer {
  /** curl's exit code: 0, or why no answer came (60: the certificate does not fit the name). */
  readonly exit: number;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly stderr: string;
}

/** The server under test, seen from outside: its ports and the certificates a client trusts. */
interface Site {
  readonly httpPort: number;
  readonly httpsPort: number;
  /** PEM bundle of every certificate the server presents (they are self-signed). */
  readonly trust: string;
}

/**
 * One request with curl, as a client on the Internet would make it: the URL's name is what
 * curl sends as Host and SNI and checks the certificate against; --connect-to points it at the
 * loopback port of the URL's scheme.
 */
async function curl(
  site: Site,
  url: string,
  options: { method?: string; data?: string; headers?: readonly string[]; args?: readonly string[] } = {},
): Promise<HttpAnswer> {
  requireTool('curl', 'curl');
  const port = url.startsWith('https:') ? site.httpsPort : site.httpPort;
  const args = ['-sS', '-i', '--max-time', '15', '--cacert', site.trust, '--connect-to', `::127.0.0.1:${port}`, '-H', 'Expect:'];
  if (options.method) args.push('-X', options.method);
  for (const h of options.headers ?? []) args.push('-H', h);
  if (options.data !== undefined) args.push('--data-binary', '@-');
  args.push(...(options.args ?? []), url);
  const run = await runTool('curl', args, options.data ?? '');
  if (run.code !== 0) return { exit: run.code ?? -1, status: 0, headers: {}, body: '', stderr: run.stderr };
  const split = run.stdout.indexOf('\r\n\r\n');
  const head = split < 0 ? run.stdout : run.stdout.slice(0, split);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { exit: 0, status: Number(statusLine.split(' ')[1]), headers, body: split < 0 ? '' : run.stdout.slice(split + 4), stderr: run.stderr };
}

/**
 * Thunderbird's lookup at the mail provider (fetchConfigFromISP in its account setup), in its
 * order: https://autoconfig.<domain>/mail/config-v1.1.xml, then
 * https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml, then the same two over http
 * (mailnews.auto_config.fetchFromISP.sslOnly is false by default), each with ?emailaddress=
 * (fetchFromISP.sendEmailAddress, true by default). The first 200 with a clientConfig wins; a
 * certificate that does not fit, or any other failure, moves on to the next URL.
 */
async function thunderbirdLookup(site: Site, address: string): Promise<{ url: string; failed: string[]; config: XmlTree }> {
  const domain = address.slice(address.indexOf('@') + 1);
  const query = `?emailaddress=${encodeURIComponent(address)}`;
  const urls = [
    `https://autoconfig.${domain}/mail/config-v1.1.xml${query}`,
    `https://${domain}/.well-known/autoconfig/mail/config-v1.1.xml${query}`,
    `http://autoconfig.${domain}/mail/config-v1.1.xml${query}`,
    `http://${domain}/.well-known/autoconfig/mail/config-v1.1.xml${query}`,
  ];
  const failed: string[] = [];
  for (const url of urls) {
    const answer = await curl(site, url);
    if (answer.exit === 0 && answer.status === 200) {
      const config = await parseXml(answer.body);
      if (config.tag === 'clientConfig') return { url, failed, config };
    }
    failed.push(`${url}: ${answer.exit === 0 ? `HTTP ${answer.status}` : `curl exit ${answer.exit}`}`);
  }
  throw new Error(`no configuration found:\n${failed.join('\n')}`);
}

/** What Thunderbird reads of each server in a clientConfig. */
function servers(config: XmlTree, element: 'incomingServer' | 'outgoingServer'): string[] {
  const provider = child(config, 'emailProvider');
  return childrenNamed(provider, element).map(
    (s) =>
      `${s.attrib.type} ${textOf(s, 'hostname')}:${textOf(s, 'port')} ${textOf(s, 'socketType')} ${textOf(s, 'authentication')} ${textOf(s, 'username')}`,
  );
}

/** The request Outlook POSTs (POX Autodiscover). */
function outlookRequest(address: string, schema = RESPONSE_SCHEMA): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?>\r\n' +
    `<Autodiscover xmlns="${REQUEST_SCHEMA}">\r\n` +
    `  <Request>\r\n    <EMailAddress>${address}</EMailAddress>\r\n` +
    `    <AcceptableResponseSchema>${schema}</AcceptableResponseSchema>\r\n  </Request>\r\n` +
    '</Autodiscover>\r\n'
  );
}

function assertNoInternals(answer: HttpAnswer): void {
  assert.doesNotMatch(answer.body, /\bat .*:\d+:\d+|Error:|node:/, `no stack trace or internals: ${answer.body}`);
}

/** Whether the certificate presented for `name` on the TLS port passes a client's checks. */
async function certificateFits(site: Site, port: number, name: string): Promise<boolean> {
  requireTool('openssl', 'openssl');
  const run = await runTool('openssl', [
    's_client', '-connect', `127.0.0.1:${port}`, '-servername', name, '-verify_hostname', name,
    '-CAfile', site.trust, '-verify_return_error', '-brief',
  ]);
  return run.code === 0 && /Verification: OK/.test(run.stderr);
}

describe('client configuration over http and https', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let site: Site;
  let dns: TestDnsServer;
  let mainCert: string;

  before(async () => {
    const [main, other] = await Promise.all([
      makeCertificate('main', ['mail.example.test', 'autoconfig.example.test', 'autodiscover.example.test', 'mta-sts.example.test', 'example.test']),
      makeCertificate('other', ['other.test', '*.other.test']),
    ]);
    mainCert = main.cert;
    instance = new PosternInstance({ hostname: 'mx.postern.test', web: true, pop3: true });
    const certDir = join(instance.root, 'certs');
    mkdirSync(certDir, { mode: 0o755 });
    const mainFiles = writeCertificate(certDir, 'main', main);
    const otherFiles = writeCertificate(certDir, 'other', other);
    const trust = join(instance.root, 'trust.pem');
    writeFileSync(trust, `${main.cert.trim()}\n${other.cert.trim()}\n`);
    appendFileSync(
      instance.configPath,
      `\n${stringify({
        tls: { ...mainFiles, certificates: [otherFiles] },
        clients: { host: 'mail.example.test' },
        dovecot: { imaps: [`127.0.0.1:${IMAPS_PORT}`], imap: [`127.0.0.1:${IMAP_PORT}`] },
      })}\n`,
    );
    for (const domain of ['example.test', 'other.test', 'third.test']) await instance.cliOk(['domain', 'add', domain]);
    await instance.addUser('alice@example.test', PASSWORD);
    server = await instance.start();
    site = { httpPort: server.port('http'), httpsPort: server.port('https'), trust };
    dns = await TestDnsServer.start();
  });

  after(async () => {
    await dns?.close();
    await stopAndDispose(server, instance);
  });

  describe('Thunderbird', () => {
    test('its first URL, https://autoconfig.<domain>/, answers when the certificate covers that name', async () => {
      const found = await thunderbirdLookup(site, 'alice@example.test');
      assert.equal(found.url, 'https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=alice%40example.test');
      const { config } = found;
      assert.equal(config.attrib.version, '1.1');
      const provider = child(config, 'emailProvider');
      assert.equal(provider.attrib.id, 'example.test');
      assert.equal(textOf(provider, 'domain'), 'example.test');
      assert.deepEqual(servers(config, 'incomingServer'), [
        `imap mail.example.test:${IMAPS_PORT} SSL password-cleartext %EMAILADDRESS%`,
        `imap mail.example.test:${IMAP_PORT} STARTTLS password-cleartext %EMAILADDRESS%`,
        `pop3 mail.example.test:${server.port('pop3s')} SSL password-cleartext %EMAILADDRESS%`,
        `pop3 mail.example.test:${server.port('pop3')} STARTTLS password-cleartext %EMAILADDRESS%`,
      ]);
      assert.deepEqual(servers(config, 'outgoingServer'), [
        `smtp mail.example.test:${server.port('submissions')} SSL password-cleartext %EMAILADDRESS%`,
        `smtp mail.example.test:${server.port('submission')} STARTTLS password-cleartext %EMAILADDRESS%`,
      ]);
      // The host handed out is one the certificate covers: the client's first connection passes.
      assert.equal(await certificateFits(site, server.port('submissions'), 'mail.example.test'), true);
      assert.equal(await certificateFits(site, server.port('pop3s'), 'mail.example.test'), true);
    });

    test('no certificate for autoconfig.<domain> nor <domain>: both https URLs fail, http://autoconfig.<domain>/ answers', async () => {
      const found = await thunderbirdLookup(site, 'carol@third.test');
      assert.equal(found.url, 'http://autoconfig.third.test/mail/config-v1.1.xml?emailaddress=carol%40third.test');
      assert.deepEqual(found.failed, [
        'https://autoconfig.third.test/mail/config-v1.1.xml?emailaddress=carol%40third.test: curl exit 60',
        'https://third.test/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=carol%40third.test: curl exit 60',
      ]);
      assert.equal(child(found.config, 'emailProvider').attrib.id, 'third.test');
      assert.equal(servers(found.config, 'outgoingServer').length, 2);
    });

    test('the .well-known URL on the domain itself, with or without ?emailaddress', async () => {
      const withAddress = await curl(site, 'https://example.test/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.test');
      const without = await curl(site, 'https://example.test/.well-known/autoconfig/mail/config-v1.1.xml');
      assert.equal(withAddress.status, 200);
      assert.equal(without.body, withAddress.body);
      assert.match(withAddress.headers['content-type'] ?? '', /^application\/xml/);
      assert.equal(withAddress.headers['x-content-type-options'], 'nosniff');
    });

    test('an address with no account gets the same answer as one with: nothing says who exists', async () => {
      const alice = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=alice%40example.test');
      const nobody = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=nobody%40example.test');
      assert.equal(nobody.status, 200);
      assert.equal(nobody.body, alice.body);
    });

    test('a domain that is not ours is 404; a malformed address is 400', async () => {
      for (const url of [
        'http://autoconfig.nowhere.test/mail/config-v1.1.xml?emailaddress=alice%40nowhere.test',
        'http://autoconfig.nowhere.test/mail/config-v1.1.xml',
        'http://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=alice%40nowhere.test',
        'http://127.0.0.1/mail/config-v1.1.xml',
      ]) {
        const answer = await curl(site, url);
        assert.equal(answer.status, 404, url);
        assertNoInternals(answer);
      }
      for (const address of ['alice', 'alice%40example.test%0d%0aX', '%22a%20b%22%40example.test', 'a%40example.test&emailaddress=b%40example.test']) {
        const answer = await curl(site, `http://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=${address}`);
        assert.equal(answer.status, 400, address);
      }
    });
  });

  describe('Outlook Autodiscover', () => {
    const url = 'https://autodiscover.example.test/Autodiscover/Autodiscover.xml';

    test('POST with Outlook’s request: IMAP, POP3 and SMTP settings in responseschema/2006a, any case of the path', async () => {
      for (const u of [url, 'https://example.test/autodiscover/autodiscover.xml', 'https://autodiscover.example.test/AUTODISCOVER/AUTODISCOVER.XML']) {
        const answer = await curl(site, u, { method: 'POST', data: outlookRequest('alice@example.test'), headers: ['Content-Type: text/xml'] });
        assert.equal(answer.status, 200, u);
        const doc = await parseXml(answer.body);
        assert.equal(doc.tag, `{${ENVELOPE_SCHEMA}}Autodiscover`);
        const response = child(doc, 'Response');
        assert.equal(namespaceOf(response.tag), RESPONSE_SCHEMA);
        const account = child(response, 'Account');
        assert.equal(textOf(account, 'AccountType'), 'email');
        assert.equal(textOf(account, 'Action'), 'settings');
        const protocols = childrenNamed(account, 'Protocol').map((p) => ({
          type: textOf(p, 'Type'),
          server: textOf(p, 'Server'),
          port: Number(textOf(p, 'Port')),
          login: textOf(p, 'LoginName'),
          encryption: textOf(p, 'Encryption'),
          ssl: textOf(p, 'SSL'),
          spa: textOf(p, 'SPA'),
          auth: textOf(p, 'AuthRequired'),
        }));
        const common = { server: 'mail.example.test', login: 'alice@example.test', ssl: 'on', spa: 'off', auth: 'on' };
        assert.deepEqual(protocols, [
          { type: 'IMAP', port: IMAPS_PORT, encryption: 'SSL', ...common },
          { type: 'POP3', port: server.port('pop3s'), encryption: 'SSL', ...common },
          { type: 'SMTP', port: server.port('submissions'), encryption: 'SSL', ...common },
        ]);
      }
    });

    test('errors: GET is 405, bad XML 400 with error 600, another schema 601, a foreign domain 404', async () => {
      const get = await curl(site, url);
      assert.equal(get.status, 405);
      assert.equal(get.headers.allow, 'POST');
      const errorCode = async (answer: HttpAnswer): Promise<string> => {
        const doc = await parseXml(answer.body);
        assert.equal(doc.tag, `{${ENVELOPE_SCHEMA}}Autodiscover`);
        const error = child(child(doc, 'Response'), 'Error');
        assert.match(error.attrib.Time ?? '', /^\d\d:\d\d:\d\d\.\d{3}$/);
        return textOf(error, 'ErrorCode');
      };
      for (const body of ['<Autodiscover><Request>', 'alice@example.test', outlookRequest('not an address'), `<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>${outlookRequest('&x;')}`]) {
        const answer = await curl(site, url, { method: 'POST', data: body });
        assert.equal(answer.status, 400, body);
        assert.equal(await errorCode(answer), '600', body);
        assertNoInternals(answer);
      }
      const mobile = await curl(site, url, {
        method: 'POST',
        data: outlookRequest('alice@example.test', 'http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006'),
      });
      assert.equal(mobile.status, 200);
      assert.equal(await errorCode(mobile), '601');
      const foreign = await curl(site, url, { method: 'POST', data: outlookRequest('alice@nowhere.test') });
      assert.equal(foreign.status, 404);
    });

    test('a body over 16 KiB is 413, with Content-Length or chunked, and the connection is closed', async () => {
      const big = outlookRequest(`${'a'.repeat(20_000)}@example.test`);
      const declared = await curl(site, url, { method: 'POST', data: big });
      assert.equal(declared.status, 413);
      assert.equal(declared.headers.connection, 'close');
      const chunked = await curl(site, url, { method: 'POST', data: big, headers: ['Transfer-Encoding: chunked'] });
      assert.equal(chunked.status, 413);
    });
  });

  describe('Apple .mobileconfig', () => {
    const profileUrl = (address: string) => `https://mail.example.test/apple/mobileconfig?emailaddress=${encodeURIComponent(address)}`;

    test('a profile with one Mail payload, no password, and UUIDs that stay the same for one address', async () => {
      const answer = await curl(site, profileUrl('alice@example.test'));
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['content-type'], 'application/x-apple-aspen-config');
      assert.match(answer.headers['content-disposition'] ?? '', /^attachment; filename="example\.test\.mobileconfig"$/);
      const profile = (await parsePlist(answer.body)) as Record<string, unknown>;
      assert.equal(profile.PayloadType, 'Configuration');
      assert.equal(profile.PayloadVersion, 1);
      const content = profile.PayloadContent as Record<string, unknown>[];
      assert.equal(content.length, 1);
      const mail = content[0] as Record<string, unknown>;
      assert.deepEqual(
        {
          type: mail.PayloadType,
          account: mail.EmailAccountType,
          address: mail.EmailAddress,
          inHost: mail.IncomingMailServerHostName,
          inPort: mail.IncomingMailServerPortNumber,
          inSsl: mail.IncomingMailServerUseSSL,
          inUser: mail.IncomingMailServerUsername,
          inAuth: mail.IncomingMailServerAuthentication,
          outHost: mail.OutgoingMailServerHostName,
          outPort: mail.OutgoingMailServerPortNumber,
          outSsl: mail.OutgoingMailServerUseSSL,
          outUser: mail.OutgoingMailServerUsername,
          samePassword: mail.OutgoingPasswordSameAsIncomingPassword,
        },
        {
          type: 'com.apple.mail.managed',
          account: 'EmailTypeIMAP',
          address: 'alice@example.test',
          inHost: 'mail.example.test',
          inPort: IMAPS_PORT,
          inSsl: true,
          inUser: 'alice@example.test',
          inAuth: 'EmailAuthPassword',
          outHost: 'mail.example.test',
          outPort: server.port('submissions'),
          outSsl: true,
          outUser: 'alice@example.test',
          samePassword: true,
        },
      );
      // No IncomingPassword or OutgoingPassword: the device asks for it at installation.
      const keys = [...Object.keys(profile), ...Object.keys(mail)].filter((k) => k !== 'OutgoingPasswordSameAsIncomingPassword');
      for (const key of keys) assert.doesNotMatch(key, /Password/, key);
      assert.ok(!answer.body.includes(PASSWORD));
      const uuid = /^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/;
      assert.match(String(profile.PayloadUUID), uuid);
      assert.match(String(mail.PayloadUUID), uuid);
      assert.notEqual(profile.PayloadUUID, mail.PayloadUUID);

      const again = (await parsePlist((await curl(site, profileUrl('alice@example.test'))).body)) as Record<string, unknown>;
      assert.equal(again.PayloadUUID, profile.PayloadUUID);
      assert.equal((again.PayloadContent as Record<string, unknown>[])[0]?.PayloadUUID, mail.PayloadUUID);
      const bob = (await parsePlist((await curl(site, profileUrl('bob@example.test'))).body)) as Record<string, unknown>;
      assert.notEqual(bob.PayloadUUID, profile.PayloadUUID);
    });

    test('no address is 400, a foreign domain 404', async () => {
      assert.equal((await curl(site, 'https://mail.example.test/apple/mobileconfig')).status, 400);
      assert.equal((await curl(site, profileUrl('alice@nowhere.test'))).status, 404);
    });

    test('each request is one access log line', async () => {
      const line = await server.waitForLog((e) => e.msg === 'http request' && e.path === '/apple/mobileconfig' && e.status === 200);
      assert.equal(line.listener, 'https');
      assert.equal(line.host, 'mail.example.test');
      assert.equal(line.client_ip, '127.0.0.1');
      assert.match(String(line.tls_version), /^TLSv1\.[23]$/);
      assert.equal(line.method, 'GET');
      assert.match(String(line.user_agent), /^curl\//);
      assert.equal(typeof line.duration_ms, 'number');
    });
  });

  describe('MTA-STS', () => {
    test('https://mta-sts.<domain>/.well-known/mta-sts.txt: text/plain, the policy of [mta_sts]', async () => {
      const expected = mtaStsPolicy(loadConfig(instance.configPath).config).text;
      const answer = await curl(site, 'https://mta-sts.example.test/.well-known/mta-sts.txt', { args: ['-v'] });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['content-type'], 'text/plain');
      assert.equal(answer.body, expected);
      assert.match(answer.stderr, /subject: CN\s*=\s*main/);
      const parsed = parsePolicy(answer.body);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      assert.equal(parsed.policy.mode, 'testing');
      assert.deepEqual(parsed.policy.mx, ['mx.postern.test']);
    });

    test("Postern's own MTA-STS client fetches it, resolving the name and checking the certificate", async () => {
      dns.set('mta-sts.example.test', [{ type: 'A', address: '127.0.0.1' }]);
      const text = await fetchPolicyText('example.test', {
        dns: createDnsClient({ servers: [dns.address] }),
        port: site.httpsPort,
        ca: mainCert,
        timeoutMs: 10_000,
      });
      assert.equal(parsePolicy(text).ok, true);
    });

    test('not over http, not for another name, not for a domain that is not ours', async () => {
      assert.equal((await curl(site, 'http://mta-sts.example.test/.well-known/mta-sts.txt')).status, 404);
      assert.equal((await curl(site, 'https://example.test/.well-known/mta-sts.txt')).status, 404);
      const foreign = await curl(site, 'https://mta-sts.nowhere.test/.well-known/mta-sts.txt', { args: ['--insecure'] });
      assert.equal(foreign.status, 404);
    });

    test('SNI: a name with its own [[tls.certificates]] entry gets that certificate', async () => {
      // The "other" certificate is the only one valid for these names: curl checks it.
      const answer = await curl(site, 'https://mta-sts.other.test/.well-known/mta-sts.txt', { args: ['-v'] });
      assert.equal(answer.exit, 0, answer.stderr);
      assert.equal(answer.status, 200);
      assert.match(answer.stderr, /subject: CN\s*=\s*other/);
      assert.equal(await certificateFits(site, site.httpsPort, 'autoconfig.other.test'), true);
      assert.equal(await certificateFits(site, site.httpsPort, 'autoconfig.third.test'), false);
    });
  });

  describe('limits and hostile requests', () => {
    test('405 for methods a path does not take; HEAD has the headers and no body', async () => {
      const del = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml', { method: 'DELETE' });
      assert.equal(del.status, 405);
      assert.equal(del.headers.allow, 'GET, HEAD');
      const head = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml', { args: ['--head'] });
      assert.equal(head.status, 200);
      assert.ok(Number(head.headers['content-length']) > 100);
      assert.equal(head.body, '');
    });

    test('paths are matched exactly: no traversal, no percent tricks, no absolute-form targets', async () => {
      for (const path of ['/.well-known/../mail/config-v1.1.xml', '/mail/%63onfig-v1.1.xml', '/mail/config-v1.1.xml/', '//mail/config-v1.1.xml', '/etc/passwd', '/']) {
        const answer = await curl(site, `http://autoconfig.example.test${path}`, { args: ['--path-as-is'] });
        assert.equal(answer.status, 404, path);
        assertNoInternals(answer);
      }
      const absolute = await curl(site, 'http://autoconfig.example.test/', { args: ['--request-target', 'http://autoconfig.example.test/mail/config-v1.1.xml'] });
      assert.equal(absolute.status, 400);
    });

    test('a request head over 8 KiB is 431', async () => {
      const answer = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml', { headers: [`X-Filler: ${'a'.repeat(9000)}`] });
      assert.equal(answer.status, 431);
    });

    test('a client that never finishes its request head is cut off with 408 (slowloris)', async () => {
      const started = Date.now();
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(site.httpPort, '127.0.0.1', () => socket.write('GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.test\r\n'));
        let received = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => (received += d));
        socket.on('close', () => resolve(received));
        socket.on('error', reject);
        setTimeout(() => socket.destroy(new Error('not cut off within 30 s')), 30_000).unref();
      });
      assert.match(reply, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started < 25_000);
    });
  });
});

describe('a [clients] host that no certificate covers, and the connection limit', () => {
  let instance: PosternInstance;
  let server: PosternProcess;
  let site: Site;

  before(async () => {
    instance = new PosternInstance({ hostname: 'mx.postern.test', web: true, pop3: true, limits: { max_connections: 1 } });
    appendFileSync(instance.configPath, `\n${stringify({ clients: { host: 'imap.elsewhere.test' } })}\n`);
    await instance.cliOk(['domain', 'add', 'example.test']);
    server = await instance.start();
    site = { httpPort: server.port('http'), httpsPort: server.port('https'), trust: join(instance.dataDir, 'tls', 'cert.pem') };
  });

  after(() => stopAndDispose(server, instance));

  test('the start warns, and clients are told hostname, which the generated certificate covers', async () => {
    const warning = await server.waitForLog((e) => e.level === 40 && /no \[tls\] certificate covers \[clients\] host "imap\.elsewhere\.test"/.test(String(e.msg)));
    assert.match(String(warning.msg), /mail programs are told hostname "mx\.postern\.test" instead/);
    const answer = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=alice%40example.test');
    assert.equal(answer.status, 200);
    const hosts = new Set(servers(await parseXml(answer.body), 'incomingServer').map((s) => s.split(' ')[1]?.split(':')[0]));
    assert.deepEqual([...hosts], ['mx.postern.test']);
  });

  test('SIGHUP: the policy served follows a changed [mta_sts]', async () => {
    const policy = async (): Promise<string> => (await curl(site, 'https://mta-sts.example.test/.well-known/mta-sts.txt', { args: ['--insecure'] })).body;
    assert.match(await policy(), /^mode: testing\r$/m);
    appendFileSync(instance.configPath, `\n${stringify({ mta_sts: { mode: 'enforce', mx: ['mail.example.test'] } })}\n`);
    process.kill(server.pid, 'SIGHUP');
    await server.waitForLog((e) => e.msg === 'reloaded');
    assert.equal(await policy(), 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 604800\r\n');
  });

  test('over [limits] max_connections, http gets 503 and https is closed; a freed place serves again', async () => {
    // A connection that holds the one place. It can itself be refused, when the server has not
    // yet seen the previous test's connection close: then it gets the 503, and is opened again.
    const openHolder = async (): Promise<{ socket: Socket; refused: () => boolean }> => {
      const socket = connect(site.httpPort, '127.0.0.1');
      let refused = false;
      socket.on('data', () => (refused = true)).on('close', () => (refused = true));
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      return { socket, refused: () => refused };
    };
    let holder = await openHolder();
    try {
      let refused: HttpAnswer | undefined;
      // The server counts the holder once it has accepted it; ask until it has.
      for (let i = 0; i < 100 && refused?.status !== 503; i++) {
        if (holder.refused()) {
          holder.socket.destroy();
          holder = await openHolder();
        }
        refused = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml');
      }
      assert.equal(refused?.status, 503);
      assert.equal(refused?.headers['retry-after'], '10');
      const tlsRefused = await curl(site, 'https://mx.postern.test/mail/config-v1.1.xml', { args: ['--insecure'] });
      assert.notEqual(tlsRefused.exit, 0);
      const line = await server.waitForLog((e) => e.msg === 'http connection' && e.outcome === 'refused');
      assert.equal(line.why, 'total');
    } finally {
      holder.socket.destroy();
    }
    let answer: HttpAnswer | undefined;
    for (let i = 0; i < 100 && answer?.status !== 200; i++) answer = await curl(site, 'http://autoconfig.example.test/mail/config-v1.1.xml');
    assert.equal(answer?.status, 200);
  });
});
