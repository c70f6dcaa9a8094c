// `postern dovecot config` and `postern dovecot sql` as an operator runs them, with the output
// read back by Dovecot's own parser (doveconf -n -c): every setting Postern means to set, as
// Dovecot understands it, for each shape of [dovecot], [delivery] and [tls].

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'smol-toml';
import { requireTool, runTool } from './support/external-tool.js';
import { runPostern, type CliResult } from './support/postern-process.js';
import { makeCertificate, writeCertificate } from './support/test-certificate.js';

let dir: string;
let cert: { cert: string; key: string };
let orgCert: { cert: string; key: string };
let configCount = 0;

before(async () => {
  requireTool('doveconf', 'dovecot-core');
  dir = mkdtempSync(join(tmpdir(), 'postern-dovecot-config-'));
  chmodSync(dir, 0o755);
  cert = writeCertificate(dir, 'mail', await makeCertificate('mail.example.test'));
  orgCert = writeCertificate(dir, 'org', await makeCertificate('mail.example.org', ['mail.example.org', '*.example.org']));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** A config file with these tables (data_dir in its own directory), for one test. */
function configFile(tables: Record<string, unknown>): { path: string; dataDir: string } {
  const dataDir = join(dir, `data${++configCount}`);
  const path = join(dir, `postern${configCount}.toml`);
  writeFileSync(path, stringify({ hostname: 'mail.example.test', data_dir: dataDir, user: '', ...tables }));
  return { path, dataDir };
}

function postern(args: readonly string[], config: string): Promise<CliResult> {
  return runPostern([...args, '--config', config], dir);
}

/** The printed dovecot.conf, written to a file doveconf can read; its path. */
async function printedConf(config: string, sqlFile = '/etc/dovecot/postern-sql.conf.ext'): Promise<string> {
  const r = await postern(['dovecot', 'config', '--sql-file', sqlFile], config);
  assert.equal(r.stderr, '', 'nothing on stderr');
  assert.equal(r.code, 0);
  const path = join(dir, `dovecot${++configCount}.conf`);
  writeFileSync(path, r.stdout);
  return path;
}

/** doveconf -n: the settings that differ from Dovecot's defaults, as Dovecot parsed them. */
async function doveconfN(conf: string): Promise<string> {
  const r = await runTool('doveconf', ['-n', '-c', conf]);
  assert.equal(r.code, 0, `doveconf -n refused the configuration: ${r.stderr}`);
  return r.stdout;
}

/** One setting's value as Dovecot reads it (defaults included), e.g. "service/auth-worker/user". */
async function setting(conf: string, name: string): Promise<string> {
  const r = await runTool('doveconf', ['-c', conf, '-h', name]);
  assert.equal(r.code, 0, `doveconf -h ${name}: ${r.stderr}`);
  return r.stdout.trim();
}

function assertOneLineFailure(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 1, `exit code (stdout: ${r.stdout})`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^postern: [^\n]+\n$/, 'one line on stderr');
  assert.match(r.stderr, message);
}

/** The account `postern dovecot config` must name: nobody when we run as root, else ourselves. */
function expectedAccount(): { user: string; uid: number; gid: number } {
  if (process.getuid?.() !== 0) {
    const user = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
    return { user, uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
  }
  const [, , uid, gid] = execFileSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).trim().split(':');
  const nogroup = execFileSync('getent', ['group', 'nogroup'], { encoding: 'utf8' }).trim().split(':')[2];
  return { user: 'nobody', uid: Number(uid), gid: Number(nogroup ?? gid) };
}

describe('postern dovecot config, read by doveconf', () => {
  test('IMAP, IMAPS and LMTP on a unix socket: every setting as Dovecot reads it', async () => {
    const { path, dataDir } = configFile({
      listen: {},
      dovecot: { imap: ['127.0.0.1:10143', '[::1]:10143'], imaps: ['0.0.0.0:10993'] },
      delivery: { lmtp: 'unix:/run/dovecot/lmtp-postern' },
      tls: { ...cert, certificates: [{ ...orgCert }] },
    });
    const conf = await printedConf(path, join(dir, 'postern-sql.conf.ext'));
    const parsed = await doveconfN(conf);
    const account = expectedAccount();
    const expected: Record<string, string> = {
      protocols: 'imap lmtp',
      hostname: 'mail.example.test',
      ssl: 'required',
      ssl_min_protocol: 'TLSv1.2',
      ssl_cert: `<${cert.cert}`,
      ssl_prefer_server_ciphers: 'yes',
      disable_plaintext_auth: 'yes',
      auth_mechanisms: 'plain login scram-sha-256',
      auth_cache_size: '0',
      auth_username_format: '%Lu',
      mail_location: 'maildir:~',
      mail_uid: String(account.uid),
      mail_gid: String(account.gid),
      first_valid_uid: String(account.uid),
      last_valid_uid: String(account.uid),
      'service/auth-worker/user': account.user,
      'service/imap-login/inet_listener/imap/address': '127.0.0.1',
      'service/imap-login/inet_listener/imap/port': '10143',
      'service/imap-login/inet_listener/imap_2/address': '::1',
      'service/imap-login/inet_listener/imaps/address': '0.0.0.0',
      'service/imap-login/inet_listener/imaps/port': '10993',
      'service/imap-login/inet_listener/imaps/ssl': 'yes',
      'service/lmtp/unix_listener/lmtp/mode': '0600',
    };
    for (const [name, value] of Object.entries(expected)) assert.equal(await setting(conf, name), value, name);
    // The passdb and userdb: the sql driver, on the file `postern dovecot sql` prints.
    assert.match(parsed, new RegExp(`passdb \\{\\n  args = ${join(dir, 'postern-sql.conf.ext')}\\n  driver = sql\\n\\}`));
    assert.match(parsed, new RegExp(`userdb \\{\\n  args = ${join(dir, 'postern-sql.conf.ext')}\\n  driver = sql\\n\\}`));
    // doveconf -h cannot name a listener whose name is a path.
    assert.match(parsed, new RegExp(`unix_listener /run/dovecot/lmtp-postern \\{\\n    mode = 0600\\n    user = ${account.user}\\n  \\}`));
    // SNI: the [[tls.certificates]] entry for each of its names.
    for (const name of ['mail.example.org', '\\*.example.org']) {
      assert.match(parsed, new RegExp(`local_name ${name} \\{\\n  ssl_cert = <${orgCert.cert}`));
    }

    const sql = await postern(['dovecot', 'sql'], path);
    assert.equal(sql.code, 0, sql.stderr);
    assert.match(sql.stdout, /^driver = sqlite$/m);
    assert.match(sql.stdout, new RegExp(`^connect = ${dataDir}/postern\\.db$`, 'm'));
    assert.match(sql.stdout, /^password_query = SELECT user, password FROM dovecot_passwords WHERE user = '%u'$/m);
    assert.match(sql.stdout, new RegExp(`^user_query = SELECT '${dataDir}/mail/' \\|\\| maildir AS home FROM dovecot_mailboxes WHERE user = '%u'$`, 'm'));
  });

  test('IMAPS alone: the built-in IMAP listener gets port 0, and there is no LMTP', async () => {
    const { path } = configFile({ dovecot: { imaps: ['127.0.0.1:10993'] }, tls: cert });
    const conf = await printedConf(path);
    const parsed = await doveconfN(conf);
    assert.equal(await setting(conf, 'protocols'), 'imap');
    assert.equal(await setting(conf, 'service/imap-login/inet_listener/imap/port'), '0');
    assert.equal(await setting(conf, 'service/imap-login/inet_listener/imaps/port'), '10993');
    assert.doesNotMatch(parsed, /service lmtp/);
  });

  test('LMTP alone, over TCP: no IMAP listener at all', async () => {
    const { path } = configFile({ delivery: { lmtp: '127.0.0.1:10024' }, tls: cert });
    const conf = await printedConf(path);
    const parsed = await doveconfN(conf);
    assert.equal(await setting(conf, 'protocols'), 'lmtp');
    assert.equal(await setting(conf, 'service/lmtp/inet_listener/lmtp/address'), '127.0.0.1');
    assert.equal(await setting(conf, 'service/lmtp/inet_listener/lmtp/port'), '10024');
    assert.doesNotMatch(parsed, /service imap-login/);
  });

  test('without [tls]: the certificate `postern serve` generates, once it exists', async () => {
    const { path, dataDir } = configFile({ dovecot: { imaps: ['127.0.0.1:10993'] } });
    const missing = await postern(['dovecot', 'config'], path);
    assertOneLineFailure(missing, /the generated certificate ".*\/tls\/cert\.pem" does not exist yet: start `postern serve` once/);
    // Where the server puts the pair it generates (src/tls/tls-credentials.ts).
    const pems = await makeCertificate('mail.example.test');
    mkdirSync(join(dataDir, 'tls'), { recursive: true });
    writeFileSync(join(dataDir, 'tls', 'cert.pem'), pems.cert);
    writeFileSync(join(dataDir, 'tls', 'key.pem'), pems.key);
    const conf = await printedConf(path);
    assert.equal(await setting(conf, 'ssl_cert'), `<${join(dataDir, 'tls', 'cert.pem')}`);
  });

  test('nothing for Dovecot to do, or a path its syntax cannot hold: one line saying what to set', async () => {
    const { path } = configFile({ tls: cert });
    assertOneLineFailure(await postern(['dovecot', 'config'], path), /nothing for Dovecot to do: set \[dovecot\] imap or imaps .* and\/or \[delivery\] lmtp/);
    const spaced = join(dir, 'with space');
    mkdirSync(spaced);
    const odd = join(dir, 'odd.toml');
    writeFileSync(odd, stringify({ data_dir: join(spaced, 'data'), dovecot: { imaps: ['127.0.0.1:10993'] }, tls: cert }));
    assertOneLineFailure(await postern(['dovecot', 'sql'], odd), /^postern: data_dir ".*with space\/data" contains characters Dovecot's configuration cannot hold/);
  });
});
