// A private Postfix instance for the relay tests and the benchmark: its own config, queue and
// data directories in a temp dir, smtpd on one loopback port, and every message it accepts for
// its domains delivered by virtual(8) into one Maildir (<root>/mail/inbox). More roles:
//   - `users`: an authenticating smart host. Clients must AUTH (Cyrus SASL with an sasldb made
//     by saslpasswd2), and only over TLS (smtpd_tls_auth_only), before any recipient is accepted.
//   - `dovecotSasl`: the same, with Dovecot's auth service as the SASL server (its socket's path)
//     instead of Cyrus and an sasldb.
//   - `relayhost`: everything accepted is relayed to that "host:port" instead (the benchmark's
//     Postfix, relaying to the same sink as Postern).
// `smtps` makes the listener speak TLS from the first byte (port 465 style) instead of STARTTLS.
//
// Queueing stays as durable as a default install (cleanup fsyncs every queue file), so the
// benchmark compares like with like; only limits that would throttle 100 loopback sessions are raised.
//
// Needs root (master(8) starts as root, then drops to the postfix user) and the Debian packages
// postfix and sasl2-bin (saslpasswd2), which .ci/run installs.

import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PostfixUser {
  readonly username: string;
  readonly password: string;
}

export interface PostfixOptions {
  /** Domains delivered into the Maildir (virtual_mailbox_domains). */
  readonly domains?: readonly string[];
  /** myhostname: the name in its greeting and Received headers. Default "postfix.test". */
  readonly hostname?: string;
  /** Offer STARTTLS with this certificate and key (PEM text). Required with `users`. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Smart-host mode: only these may send, after AUTH over TLS. */
  readonly users?: readonly PostfixUser[];
  /** Smart-host mode with Dovecot SASL: AUTH checked by the Dovecot auth socket at this path. */
  readonly dovecotSasl?: string;
  /** The listener speaks TLS from the first byte (smtpd_tls_wrappermode, RFC 8314). Needs `tls`. */
  readonly smtps?: boolean;
  /** Relay all mail to this "host:port" (no MX lookup) instead of delivering it. */
  readonly relayhost?: string;
  /** smtpd's address; default 127.0.0.1 (another 127.x lets several peers share an MX port). */
  readonly host?: string;
  /** smtpd's port; default: a free one. */
  readonly port?: number;
  /**
   * Deliberate misconfigurations, for `postern probe` to find:
   *   - openRelay: mynetworks (all of 127.0.0.0/8, where the probe connects from) may relay anywhere;
   *   - authInClear: AUTH PLAIN/LOGIN offered before STARTTLS (smtpd_tls_auth_only = no);
   *   - tls1: TLS 1.0 and 1.1 accepted. Postfix allows them by protocol already, but OpenSSL 3
   *     refuses them at its default security level 1 (their handshakes sign with SHA-1), so the
   *     cipher list drops to level 0. Debian's /etc/ssl/openssl.cnf sets no MinProtocol, so no
   *     OPENSSL_CONF of our own is needed.
   */
  readonly misconfigured?: { readonly openRelay?: boolean; readonly authInClear?: boolean; readonly tls1?: boolean };
}

export interface PostfixMessage {
  readonly file: string;
  readonly text: string;
}

/** The queues a message passes through before delivery; all empty means everything left. */
const QUEUES = ['maildrop', 'incoming', 'active', 'deferred', 'hold'] as const;

export class TestPostfix {
  readonly configDir: string;
  readonly queueDir: string;
  /** Where delivered mail lands. */
  readonly maildirNew: string;
  readonly logFile: string;

  private constructor(
    readonly root: string,
    readonly host: string,
    readonly port: number,
    readonly hostname: string,
  ) {
    this.configDir = join(root, 'etc');
    this.queueDir = join(root, 'queue');
    this.maildirNew = join(root, 'mail', 'inbox', 'new');
    this.logFile = join(root, 'postfix.log');
  }

  /** Whether this machine can run one: root, and the postfix and saslpasswd2 programs. */
  static available(): string | undefined {
    if (process.getuid?.() !== 0) return 'not root (Postfix master(8) must start as root)';
    for (const program of ['/usr/sbin/postfix', '/usr/sbin/saslpasswd2']) {
      if (!existsSync(program)) return `${program} is missing (apt-get install postfix sasl2-bin)`;
    }
    return undefined;
  }

  /**
   * Configures and starts an instance in a fresh temp directory; resolves once it greets. An
   * instance that accepts connections but never greets is stopped and one more is started in its
   * place: seen once in CI, Debian's Postfix 3.7 had its postlogd blocked sending a record of its
   * own to its own full socket, so every smtpd waited forever to log its first line.
   */
  static async start(options: PostfixOptions = {}): Promise<TestPostfix> {
    if ((options.users || options.dovecotSasl || options.smtps) && !options.tls) {
      throw new Error('a Postfix smart host or smtps listener needs tls: AUTH is only offered over TLS');
    }
    try {
      return await TestPostfix.startOnce(options);
    } catch (err) {
      if (!(err instanceof SilentPostfix)) throw err;
      return TestPostfix.startOnce(options);
    }
  }

  private static async startOnce(options: PostfixOptions): Promise<TestPostfix> {
    const root = mkdtempSync(join(tmpdir(), 'postern-postfix-'));
    chmodSync(root, 0o755);
    const host = options.host ?? '127.0.0.1';
    const instance = new TestPostfix(root, host, options.port ?? (await freePort(host)), options.hostname ?? 'postfix.test');
    try {
      await instance.configure(options);
      await instance.postfix('check');
      await instance.postfix('start');
      await instance.waitUntilAccepting();
      // Behind TLS from the first byte the greeting is not readable here; the others say 220.
      if (options.smtps !== true) await instance.waitForGreeting();
    } catch (err) {
      await instance.stop();
      throw err;
    }
    return instance;
  }

  /** "HOST:PORT". */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** The delivered messages now, oldest name first. */
  readMaildir(): PostfixMessage[] {
    if (!existsSync(this.maildirNew)) return [];
    return readdirSync(this.maildirNew)
      .filter((name) => !name.startsWith('.'))
      .sort()
      .map((name) => ({ file: join(this.maildirNew, name), text: readFileSync(join(this.maildirNew, name), 'latin1') }));
  }

  /** How many messages were delivered (cheaper than readMaildir for the benchmark). */
  delivered(): number {
    return existsSync(this.maildirNew) ? readdirSync(this.maildirNew).length : 0;
  }

  /** Messages still in Postfix's queues. */
  queued(): number {
    return QUEUES.reduce((sum, queue) => sum + countFiles(join(this.queueDir, queue)), 0);
  }

  /** Polls until a delivered message contains `marker`; throws with the log's tail on timeout. */
  async waitForMessage(marker: string, timeoutMs = 20_000): Promise<PostfixMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.readMaildir().find((m) => m.text.includes(marker));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out waiting for "${marker}" in Postfix's Maildir\n${this.logTail()}`);
      await sleep(50);
    }
  }

  /** The end of Postfix's own log, for failure messages. */
  logTail(lines = 30): string {
    if (!existsSync(this.logFile)) return '(no postfix log)';
    return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** `postfix stop`, waits for master(8) to exit, and removes the temp directory. */
  async stop(): Promise<void> {
    const pid = this.masterPid();
    await this.postfix('stop').catch(() => undefined);
    if (pid !== undefined) {
      const deadline = Date.now() + 15_000;
      while (isAlive(pid) && Date.now() < deadline) await sleep(50);
      if (isAlive(pid)) {
        // master(8) leads its own process group: its daemons go with it, not left orphaned.
        killGroup(pid);
        process.kill(pid, 'SIGKILL');
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  private async postfix(command: 'check' | 'start' | 'stop'): Promise<void> {
    try {
      // Bounded: `postfix stop` on an instance whose postlogd is stuck would wait with it.
      await run('/usr/sbin/postfix', ['-c', this.configDir, command], { env: pathWithSbin(), timeout: 30_000, killSignal: 'SIGKILL' });
    } catch (error) {
      // Without a terminal Postfix reports only to its log file.
      throw new Error(`postfix ${command} failed: ${(error as Error).message}\n${this.logTail()}`);
    }
  }

  /** master(8)'s process id, from its pid file (undefined before it started). */
  masterPid(): number | undefined {
    const file = join(this.queueDir, 'pid', 'master.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** The first line of a session is a 220 greeting; SilentPostfix if none comes in time. */
  private async waitForGreeting(timeoutMs = 10_000): Promise<void> {
    const line = await firstLine(this.host, this.port, timeoutMs);
    if (!line?.startsWith('220')) {
      throw new SilentPostfix(`Postfix on port ${this.port} accepted but did not greet (${line === undefined ? 'nothing' : JSON.stringify(line)} in ${timeoutMs} ms)\n${this.logTail()}`);
    }
  }

  private async waitUntilAccepting(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await canConnect(this.host, this.port))) {
      if (Date.now() > deadline) throw new Error(`Postfix does not accept on port ${this.port}\n${this.logTail()}`);
      await sleep(50);
    }
  }

  private async configure(options: PostfixOptions): Promise<void> {
    const { uid, gid } = systemUser('postfix');
    for (const dir of [this.configDir, this.queueDir]) mkdirSync(dir, { recursive: true, mode: 0o755 });
    // data_directory and the Maildir base belong to the postfix user, which virtual(8) delivers as.
    for (const dir of [join(this.root, 'data'), join(this.root, 'mail')]) {
      mkdirSync(dir, { mode: 0o755 });
      chownSync(dir, uid, gid);
    }
    const extra: string[] = [];
    if (options.tls) extra.push(...this.tlsSettings(options.tls, uid, gid));
    else extra.push('smtpd_tls_security_level = none');
    if (options.users) extra.push(...(await this.cyrusSettings(options.users, uid, gid)), ...saslSettings());
    if (options.dovecotSasl) extra.push('smtpd_sasl_type = dovecot', `smtpd_sasl_path = ${options.dovecotSasl}`, ...saslSettings());
    if (options.relayhost) extra.push(`relayhost = [${options.relayhost.replace(/:(\d+)$/, ']:$1')}`);
    // Last: a later line of main.cf overrides an earlier one.
    if (options.misconfigured?.authInClear) extra.push('smtpd_tls_auth_only = no');
    if (options.misconfigured?.tls1) {
      extra.push('smtpd_tls_protocols = >=TLSv1', 'smtpd_tls_ciphers = medium', 'tls_medium_cipherlist = DEFAULT:@SECLEVEL=0');
    }
    writeFileSync(join(this.configDir, 'main.cf'), this.mainCf(options, uid, gid, extra));
    writeFileSync(join(this.configDir, 'master.cf'), this.masterCf(options.smtps === true));
  }

  private mainCf(options: PostfixOptions, uid: number, gid: number, extra: readonly string[]): string {
    const smartHost = options.users !== undefined || options.dovecotSasl !== undefined;
    // A smart host takes mail only from clients that authenticated; an MX takes mail for its
    // domains from anyone, and relays for loopback clients only when it has a relayhost.
    const restrictions = smartHost
      ? `${options.misconfigured?.openRelay ? 'permit_mynetworks, ' : ''}permit_sasl_authenticated, reject`
      : options.misconfigured?.openRelay || options.relayhost
        ? 'permit_mynetworks, reject_unauth_destination'
        : 'reject_unauth_destination';
    return `# Generated by test/support/postfix.ts: a private instance for tests and the benchmark.
compatibility_level = 3.6
config_directory = ${this.configDir}
queue_directory = ${this.queueDir}
data_directory = ${join(this.root, 'data')}
# No syslog daemon is assumed; Postfix logs to its own file (via postlogd, as Debian does with syslog).
maillog_file = ${this.logFile}
maillog_file_prefixes = ${this.root}
myhostname = ${this.hostname}
mydomain = ${this.hostname}
myorigin = $myhostname
# The smtp client's address; smtpd binds the address in master.cf, which may be any 127.x.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = ${restrictions}
smtpd_recipient_restrictions = ${restrictions}
virtual_mailbox_domains = ${(options.domains ?? []).join(', ')}
virtual_mailbox_base = ${join(this.root, 'mail')}
# A trailing slash means Maildir; every recipient shares one.
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:${uid}
virtual_gid_maps = static:${gid}
# 100 concurrent sessions need 100 smtpd processes; anvil must not refuse them.
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
# Retry fast: tests never wait for Postfix's own backoff.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_tls_security_level = none
biff = no
${extra.join('\n')}
`;
  }

  /** STARTTLS offered with the given certificate. */
  private tlsSettings(tls: NonNullable<PostfixOptions['tls']>, uid: number, gid: number): string[] {
    const cert = join(this.configDir, 'smtpd.pem');
    const key = join(this.configDir, 'smtpd.key');
    writeFileSync(cert, tls.cert, { mode: 0o644 });
    writeFileSync(key, tls.key, { mode: 0o600 });
    chownSync(key, uid, gid);
    return ['smtpd_tls_security_level = may', `smtpd_tls_cert_file = ${cert}`, `smtpd_tls_key_file = ${key}`];
  }

  /**
   * Cyrus SASL with an sasldb: the accounts live in <root>/sasldb2 under the realm
   * $myhostname, which is the realm Cyrus gives a client that names none.
   */
  private async cyrusSettings(users: readonly PostfixUser[], uid: number, gid: number): Promise<string[]> {
    const saslDir = join(this.configDir, 'sasl');
    const sasldb = join(this.root, 'sasldb2');
    mkdirSync(saslDir, { mode: 0o755 });
    writeFileSync(
      join(saslDir, 'smtpd.conf'),
      `pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: ${sasldb}\n`,
    );
    for (const user of users) {
      await saslpasswd(['-f', sasldb, '-c', '-p', '-u', this.hostname, user.username], user.password);
    }
    chownSync(sasldb, uid, gid);
    chmodSync(sasldb, 0o640);
    return ['smtpd_sasl_type = cyrus', 'smtpd_sasl_path = smtpd', `cyrus_sasl_config_path = ${saslDir}`];
  }

  /** Debian's master.cf without chroot (a chroot would need copies of /etc files), smtpd on our port. */
  private masterCf(smtps: boolean): string {
    return `# Generated by test/support/postfix.ts
${this.host}:${this.port} inet n - n - - smtpd${smtps ? ' -o smtpd_tls_wrappermode=yes' : ''}
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
local      unix  -       n       n       -       -       local
virtual    unix  -       n       n       -       -       virtual
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
`;
  }
}

/** AUTH for either SASL server: offered over TLS only, the account named in Received. */
function saslSettings(): string[] {
  return [
    'smtpd_sasl_auth_enable = yes',
    'smtpd_sasl_security_options = noanonymous',
    // RFC 4954 section 4: no plaintext passwords on an unencrypted connection.
    'smtpd_tls_auth_only = yes',
    // The Received header names the account: tests see that the mail really came via AUTH.
    'smtpd_sasl_authenticated_header = yes',
  ];
}

function saslpasswd(args: readonly string[], password: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/sbin/saslpasswd2', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`saslpasswd2 exited ${code}: ${stderr.trim()}`))));
    child.stdin.end(password);
  });
}

function systemUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no "${name}" user: is the postfix package installed?`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  let count = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    count += entry.isDirectory() ? countFiles(join(dir, entry.name)) : 1;
  }
  return count;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** An instance that took connections and said nothing: worth one more start. */
class SilentPostfix extends Error {}

/** SIGKILL to a process group; nothing if it is gone already. */
function killGroup(leader: number): void {
  try {
    process.kill(-leader, 'SIGKILL');
  } catch {
    // No such group (master was not its leader, or it has ended): the pid itself is killed next.
  }
}

/** The first line the server sends on a new connection, or undefined if none comes in time. */
function firstLine(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    let text = '';
    const done = (line: string | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(line);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\n');
      if (end >= 0) done(text.slice(0, end).trimEnd());
    });
    socket.once('error', () => done(undefined));
    socket.once('close', () => done(text === '' ? undefined : text));
  });
}

/** One connection that opens and closes: whether host:port is listening. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** An unused loopback port: bind 0, read the number, let go. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** postfix and saslpasswd2 live in /usr/sbin, which a non-login root shell may lack on PATH. */
function pathWithSbin(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
}
