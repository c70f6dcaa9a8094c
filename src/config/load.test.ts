import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from './load.js';
import { configSchema } from './schema.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-config-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function writeConfig(text: string): string {
  const path = join(dir, `c${++counter}.toml`);
  writeFileSync(path, text);
  return path;
}

/** Runs fn with the CWD set to a fresh empty directory. */
function inDirectory<T>(fn: (cwd: string) => T): T {
  const cwd = mkdtempSync(join(dir, 'cwd-'));
  const previous = process.cwd();
  process.chdir(cwd);
  try {
    return fn(cwd);
  } finally {
    process.chdir(previous);
  }
}

/** Asserts loadConfig fails with a one-line ConfigError matching `message`. */
function assertConfigError(path: string | undefined, message: RegExp): void {
  assert.throws(
    () => loadConfig(path),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.doesNotMatch(err.message, /\n/, 'one line');
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('loadConfig', () => {
  test('without a file: the built-in defaults, data_dir resolved against the CWD', () => {
    inDirectory((cwd) => {
      const { config, path } = loadConfig();
      assert.equal(path, undefined);
      assert.equal(config.data_dir, join(cwd, 'data'));
      assert.equal(config.user, '');
      assert.deepEqual(config.listen.mx, ['127.0.0.1:2525']);
      assert.equal(config.limits.max_recipients, 100);
      assert.equal(config.tls.cert, undefined);
    });
  });

  test('without a path: ./postern.toml when it exists', () => {
    inDirectory((cwd) => {
      writeFileSync(join(cwd, 'postern.toml'), 'data_dir = "spool-here"\n');
      const { config, path } = loadConfig();
      assert.equal(path, join(cwd, 'postern.toml'));
      assert.equal(config.data_dir, join(cwd, 'spool-here'));
    });
  });

  test('a full file; relative paths resolve against the file, not the CWD', () => {
    const sub = join(dir, 'full');
    mkdirSync(join(sub, 'certs'), { recursive: true });
    writeFileSync(join(sub, 'certs', 'cert.pem'), 'CERT');
    writeFileSync(join(sub, 'certs', 'key.pem'), 'KEY');
    const path = join(sub, 'postern.toml');
    writeFileSync(
      path,
      `hostname = "mx.example.test"
data_dir = "var/postern"
postmaster = "admin@example.test"
user = "mail"
group = "mail"
recipient_delimiter = "-"
[listen]
mx = ["0.0.0.0:25", "[::]:25"]
submission = []
submissions = ["[::1]:465"]
[tls]
cert = "certs/cert.pem"
key = "${join(sub, 'certs', 'key.pem')}"
[limits]
max_message_size = 1000000
max_recipients = 500
greeting_delay_ms = 3000
shutdown_grace = 2.5
[smtp]
bare_newline = "normalize"
[log]
level = "debug"
format = "pretty"
`,
    );
    const { config, path: loaded } = inDirectory(() => loadConfig(path));
    assert.equal(loaded, path);
    assert.equal(config.hostname, 'mx.example.test');
    assert.equal(config.data_dir, join(sub, 'var', 'postern'));
    assert.equal(config.tls.cert, join(sub, 'certs', 'cert.pem'));
    assert.equal(config.tls.key, join(sub, 'certs', 'key.pem'));
    assert.deepEqual(config.listen, {
      mx: ['0.0.0.0:25', '[::]:25'],
      submission: [],
      submissions: ['[::1]:465'],
      pop3: ['127.0.0.1:2110'],
      pop3s: ['127.0.0.1:2995'],
      http: ['127.0.0.1:2080'],
      https: ['127.0.0.1:2443'],
      metrics: ['127.0.0.1:9425'],
    });
    assert.equal(config.limits.max_recipients, 500);
    assert.equal(config.limits.max_errors, 10, 'unset keys in a table keep their defaults');
    assert.equal(config.limits.shutdown_grace, 2.5);
    assert.equal(config.smtp.bare_newline, 'normalize');
    assert.deepEqual(config.log, { level: 'debug', format: 'pretty' });
    assert.equal(config.user, 'mail');
  });

  test('a missing file given explicitly', () => {
    assertConfigError(join(dir, 'nope.toml'), /^config file ".*nope\.toml" not found$/);
  });

  test('TOML syntax errors name the file and line', () => {
    const path = writeConfig('hostname = "a"\n\nlimits = = 3\n');
    assertConfigError(path, /^.*c\d+\.toml line 3: TOML syntax error: \S/);
  });

  test('a wrong type names the key and what it expects', () => {
    const path = writeConfig('[limits]\nmax_recipients = "lots"\n');
    assertConfigError(path, /\.toml: limits\.max_recipients: expected a whole number >= 1, got "lots"$/);
  });

  test('a value out of range', () => {
    assertConfigError(
      writeConfig('[limits]\nmax_command_line = 100\n'),
      /: limits\.max_command_line: expected a whole number >= 512, got 100$/,
    );
    assertConfigError(
      writeConfig('[limits]\ngreeting_delay_ms = 99999\n'),
      /: limits\.greeting_delay_ms: expected a whole number from 0 to 30000, got 99999$/,
    );
    assertConfigError(writeConfig('[screen]\ndnsbl_sites = ["zen.spamhaus.org*x"]\n'), /screen\.dnsbl_sites\[0\]: expected zone\[=pattern\]\[\*weight\], e\.g\. "zen\.spamhaus\.org\*3"/);
    assertConfigError(writeConfig('[limits]\nmax_recipients = 1.5\n'), /expected a whole number >= 1, got 1\.5$/);
    assertConfigError(writeConfig('[limits]\ncommand_timeout = 0\n'), /: limits\.command_timeout: expected a number > 0, got 0$/);
  });

  test('an unknown key lists the allowed ones', () => {
    assertConfigError(
      writeConfig('[listen]\nsmtp = ["0.0.0.0:25"]\n'),
      /\.toml: unknown key "listen\.smtp" \(allowed: mx, submission, submissions, pop3, pop3s, http, https, metrics\)$/,
    );
    assertConfigError(writeConfig('hostnme = "x"\n'), /: unknown key "hostnme" \(allowed: hostname, data_dir, /);
  });

  test('an enum value lists the choices', () => {
    assertConfigError(
      writeConfig('[smtp]\nbare_newline = "fix"\n'),
      /: smtp\.bare_newline: expected one of "reject", "normalize", got "fix"$/,
    );
  });

  test('a bad listen address names the list element', () => {
    assertConfigError(
      writeConfig('[listen]\nmx = ["127.0.0.1:2525", "localhost"]\n'),
      /: listen\.mx\[1\]: expected "host:port".*, got "localhost"$/,
    );
    assertConfigError(writeConfig('[listen]\nmx = "0.0.0.0:25"\n'), /: listen\.mx: expected a list, each a string, got "0\.0\.0\.0:25"$/);
  });

  test('trusted_networks: loopback by default; a bad entry names the list element', () => {
    assert.deepEqual(configSchema.parse({}).limits.trusted_networks, ['127.0.0.0/8', '::1/128']);
    assertConfigError(
      writeConfig('[limits]\ntrusted_networks = ["10.0.0.0/8", "10.0.0.0/40"]\n'),
      /: limits\.trusted_networks\[1\]: expected an IP address or network, e\.g\. "127\.0\.0\.0\/8" or "::1\/128"$/,
    );
  });

  test('log.format: "auto" unless set', () => {
    assert.equal(configSchema.parse({}).log.format, 'auto');
    assert.equal(configSchema.parse({ log: { format: 'json' } }).log.format, 'json');
  });

  test('a table where a value belongs, and the reverse', () => {
    assertConfigError(writeConfig('[hostname]\nx = 1\n'), /: hostname: expected a non-empty string, got a table$/);
    assertConfigError(writeConfig('limits = 5\n'), /: limits: expected a table, got 5$/);
  });

  test('tls needs both files, and they must be readable', () => {
    assertConfigError(writeConfig('[tls]\ncert = "/x.pem"\n'), /: tls: set both tls\.cert and tls\.key, or neither/);
    const key = join(dir, 'key.pem');
    writeFileSync(key, 'KEY');
    assertConfigError(
      writeConfig(`[tls]\ncert = "/nonexistent/x.pem"\nkey = "${key}"\n`),
      /: tls\.cert: cannot read "\/nonexistent\/x\.pem": no such file; fix the path or remove \[tls\] to use a generated self-signed certificate$/,
    );
    assertConfigError(writeConfig(`[tls]\ncert = "${key}"\nkey = "${dir}"\n`), /: tls\.key: cannot read ".*": not a regular file;/);
  });

  test('an unreadable config file', { skip: process.getuid?.() === 0 && 'root can read anything' }, () => {
    const path = writeConfig('hostname = "x"\n');
    chmodSync(path, 0o000);
    assertConfigError(path, /^cannot read config file ".*": permission denied$/);
  });

  test('[auth]: defaults, oauth jwks_file resolved against the file, CRAM-MD5 needs cram_md5', () => {
    const auth = loadConfig(writeConfig('')).config.auth;
    assert.equal(auth.cram_md5, false);
    assert.equal(auth.mechanisms.includes('CRAM-MD5'), false);
    assert.equal(auth.oauth, undefined);
    const oauth = loadConfig(
      writeConfig('[auth.oauth]\njwks_file = "keys/jwks.json"\nissuer = "https://i.test"\naudience = "postern"\n'),
    ).config.auth.oauth;
    assert.equal(oauth?.jwks_file, join(dir, 'keys', 'jwks.json'));
    assert.equal(oauth?.identity_claim, 'email');
    assertConfigError(writeConfig('[auth]\nmechanisms = ["CRAM-MD5"]\n'), /cram_md5/);
    assertConfigError(writeConfig('[auth]\nscram_iterations = 1000\n'), /scram_iterations/);
    assertConfigError(writeConfig('[auth]\nmechanisms = ["DIGEST-MD5"]\n'), /mechanisms/);
  });

  test('several problems: the first is reported and the rest counted', () => {
    assertConfigError(writeConfig('[limits]\nmax_errors = 0\nmax_connections = 0\n'), /\(and 1 more problem\)$/);
  });
});

describe('postern.example.toml', () => {
  const examplePath = fileURLToPath(new URL('../../../postern.example.toml', import.meta.url));

  test('loads without errors', () => {
    const { config } = loadConfig(examplePath);
    assert.equal(config.user, 'postern');
  });

  test('mentions every key of the schema (set or commented out), so the two cannot drift', () => {
    const text = readFileSync(examplePath, 'utf8');
    const keys = schemaKeys(configSchema as unknown as SchemaNode);
    assert.ok(keys.length > 20, 'walked the schema');
    for (const key of keys) {
      const parts = key.split('.');
      const leaf = parts.pop() as string;
      if (parts.length > 0) {
        assert.match(text, new RegExp(`^#?\\s*\\[${parts.join('\\.')}\\]\\s*$`, 'm'), `table [${parts.join('.')}]`);
      }
      assert.match(text, new RegExp(`^#?\\s*${leaf}\\s*=`, 'm'), `key ${key}`);
    }
  });
});

interface SchemaNode {
  _zod: { def: { type: string; innerType?: SchemaNode; shape?: Record<string, SchemaNode> } };
}

/** Every key of the schema as "table.key" ("hostname", "limits.max_recipients", ...). */
function schemaKeys(node: SchemaNode, prefix = ''): string[] {
  let n = node;
  while (n._zod.def.innerType) n = n._zod.def.innerType;
  if (n._zod.def.type !== 'object' || !n._zod.def.shape) return [prefix];
  return Object.entries(n._zod.def.shape).flatMap(([k, child]) => schemaKeys(child, prefix ? `${prefix}.${k}` : k));
}
