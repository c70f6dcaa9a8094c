// Dovecot's configuration for serving IMAP (and taking LMTP deliveries) over Postern's Maildirs
// and accounts, in Dovecot 2.3 syntax (Debian 12). Two files, because a 2.3 sql passdb reads its
// driver settings and queries from a file of its own:
//   - dovecot.conf (`postern dovecot config`): protocols, listeners, TLS, the passdb and userdb,
//     the mail location and the Unix account;
//   - the sql file (`postern dovecot sql`): Postern's SQLite store and the queries on the views
//     that migration 5 made for Dovecot (dovecot_passwords, dovecot_mailboxes).
//
// How logins work: Dovecot's sql passdb reads the account's SCRAM-SHA-256 secret (salted PBKDF2,
// RFC 5802) in Dovecot's own "{SCRAM-SHA-256}" form. Dovecot checks a PLAIN or LOGIN password by
// running PBKDF2 itself and comparing StoredKey, and it serves the SCRAM-SHA-256 mechanism from the
// same keys: nothing reversible is stored, and it reads the live store with no cache, so `postern
// user passwd` and `postern user remove` count from the next login.

import { parseListenAddress, type Config } from '../config/schema.js';
import { CliError } from './cli-error.js';

/** The Unix account Postern runs as: Dovecot reads postern.db and the Maildirs as it. */
export interface MailAccount {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
}

export interface CertificatePair {
  readonly cert: string;
  readonly key: string;
}

export interface DovecotSetup {
  readonly account: MailAccount;
  /** Where dovecot.conf tells Dovecot to find the sql file. */
  readonly sqlConfPath: string;
  /** The default certificate: [tls] cert/key, or the generated self-signed pair. */
  readonly tls: CertificatePair;
  /** [[tls.certificates]] by the names they serve, for Dovecot's local_name (SNI). */
  readonly sni: readonly (CertificatePair & { readonly name: string })[];
  /** OpenSSL cipher list for TLS 1.2, the one Postern's own listeners use. */
  readonly tls12Ciphers: string;
}

/**
 * Dovecot's configuration values and sql literals take a path as it is only if it holds none of
 * the characters either syntax treats specially: whitespace (later 2.3 releases split the sqlite
 * connect string at spaces), quotes, "#", "%" (variable expansion), "\", "<", "{" and "}".
 */
const PLAIN_PATH = /^\/[A-Za-z0-9._\/+@=,:~-]*$/;

function plainPath(path: string, what: string): string {
  if (!PLAIN_PATH.test(path)) {
    throw new CliError(
      `${what} "${path}" contains characters Dovecot's configuration cannot hold as they are (spaces, quotes, #, %, \\, <, { or }); use a path of letters, digits and ._/+@=,:~-`,
    );
  }
  return path;
}

/** Which protocols there is something to configure for; one line saying what to set otherwise. */
function protocolsOf(config: Config): string[] {
  const imap = config.dovecot.imap.length > 0 || config.dovecot.imaps.length > 0;
  const lmtp = config.delivery.lmtp !== '';
  if (!imap && !lmtp) {
    throw new CliError(
      'nothing for Dovecot to do: set [dovecot] imap or imaps (where it serves IMAP, e.g. imaps = ["0.0.0.0:993"]) and/or [delivery] lmtp (where it takes mail from Postern, e.g. "unix:/run/dovecot/lmtp-postern")',
    );
  }
  return [...(imap ? ['imap'] : []), ...(lmtp ? ['lmtp'] : [])];
}

/** Dovecot takes IPv6 listener addresses in brackets or bare; ours come as "[::1]:993". */
function listener(name: string, address: string, ssl: boolean): string[] {
  const { host, port } = parseListenAddress(address);
  return [`  inet_listener ${name} {`, `    address = ${host}`, `    port = ${port}`, ...(ssl ? ['    ssl = yes'] : []), '  }'];
}

/**
 * One inet_listener per address. The first of each kind takes Dovecot's built-in name ("imap",
 * "imaps"), replacing the built-in listener on 143 or 993; a kind with no address keeps that name
 * with port 0, which Dovecot reads as "do not listen".
 */
function listeners(kind: 'imap' | 'imaps', addresses: readonly string[]): string[] {
  if (addresses.length === 0) return [`  inet_listener ${kind} {`, '    port = 0', '  }'];
  return addresses.flatMap((address, i) => listener(i === 0 ? kind : `${kind}_${i + 1}`, address, kind === 'imaps'));
}

function lmtpService(config: Config, account: MailAccount): string[] {
  const target = config.delivery.lmtp;
  if (target === '') return [];
  const lines = ['', '# LMTP (RFC 2033) from Postern ([delivery] lmtp): Dovecot writes into the same Maildirs.', 'service lmtp {'];
  if (target.startsWith('unix:')) {
    const path = plainPath(target.slice('unix:'.length), '[delivery] lmtp socket');
    lines.push(`  unix_listener ${path} {`, '    mode = 0600', `    user = ${account.user}`, '  }');
  } else {
    lines.push('  # LMTP has no authentication: whoever reaches this port can deliver. Keep it on loopback.');
    lines.push(...listener('lmtp', target, false));
  }
  // The built-in socket in base_dir is mode 0666 (any local user could deliver); root only.
  lines.push('  unix_listener lmtp {', '    mode = 0600', '  }', '}');
  if (config.recipient_delimiter !== '') {
    lines.push(
      '# Quarantined mail (DMARC p=quarantine) comes as RCPT TO:<user+Junk@domain>: filed in Junk,',
      '# which is created the first time.',
      'protocol lmtp {',
      '  lmtp_save_to_detail_mailbox = yes',
      '  lda_mailbox_autocreate = yes',
      '  lda_mailbox_autosubscribe = yes',
      '}',
    );
  }
  return lines;
}

function tlsSettings(setup: DovecotSetup): string[] {
  const cert = (pair: CertificatePair, indent: string): string[] => [
    `${indent}ssl_cert = <${plainPath(pair.cert, 'the TLS certificate')}`,
    `${indent}ssl_key = <${plainPath(pair.key, 'the TLS key')}`,
  ];
  const lines = [
    '',
    '# TLS: the certificates Postern presents ([tls]). Logins only inside TLS, as in Postern (RFC 8314).',
    'ssl = required',
    ...cert(setup.tls, ''),
    'ssl_min_protocol = TLSv1.2',
    `ssl_cipher_list = ${setup.tls12Ciphers}`,
    'ssl_prefer_server_ciphers = yes',
    'disable_plaintext_auth = yes',
  ];
  for (const entry of setup.sni) lines.push(`local_name ${entry.name} {`, ...cert(entry, '  '), '}');
  return lines;
}

/** dovecot.conf: the whole file, for `postern dovecot config`. */
export function renderDovecotConf(config: Config, setup: DovecotSetup): string {
  const protocols = protocolsOf(config);
  const { account } = setup;
  const sqlConf = plainPath(setup.sqlConfPath, 'the sql file');
  const imap = protocols.includes('imap');
  const lines = [
    '# Dovecot for Postern: IMAP and LMTP over its Maildirs and accounts (Dovecot 2.3 syntax).',
    '# Printed by `postern dovecot config`; print it again after changing postern.toml.',
    `# The passdb and userdb read ${sqlConf}, printed by \`postern dovecot sql\`.`,
    '',
    `protocols = ${protocols.join(' ')}`,
    `hostname = ${config.hostname}`,
    '',
    "# Accounts: Postern's store, read live. Dovecot checks PLAIN and LOGIN passwords against the",
    '# SCRAM-SHA-256 keys Postern keeps (salted PBKDF2) and serves SCRAM-SHA-256 from them. No auth',
    '# cache, so `postern user passwd` and `postern user remove` count from the next login.',
    'auth_mechanisms = plain login scram-sha-256',
    'auth_cache_size = 0',
    '# Addresses as Postern stores them: lower case, and any character a local part may hold.',
    'auth_username_format = %Lu',
    'auth_username_chars =',
    'passdb {',
    '  driver = sql',
    `  args = ${sqlConf}`,
    '}',
    'userdb {',
    '  driver = sql',
    `  args = ${sqlConf}`,
    '}',
    "# SQLite is read in the auth worker, as the account that owns postern.db (mode 0600); Postern's",
    '# WAL mode lets it read while Postern writes.',
    'service auth-worker {',
    `  user = ${account.user}`,
    '}',
    '',
    `# Mail: the Maildirs Postern delivers to and serves over POP3, as Postern's account (${account.user}),`,
    '# and no other.',
    'mail_location = maildir:~',
    `mail_uid = ${account.uid}`,
    `mail_gid = ${account.gid}`,
    `first_valid_uid = ${account.uid}`,
    `last_valid_uid = ${account.uid}`,
    `first_valid_gid = ${account.gid}`,
    `last_valid_gid = ${account.gid}`,
    `recipient_delimiter = ${config.recipient_delimiter}`,
    'namespace inbox {',
    '  inbox = yes',
    // RFC 6154 special-use names, so that mail programs agree on where sent mail and drafts go.
    ...(['Drafts', 'Sent', 'Trash', 'Junk'] as const).flatMap((name) => [`  mailbox ${name} {`, `    special_use = \\${name}`, '  }']),
    '}',
    ...tlsSettings(setup),
  ];
  if (imap) {
    lines.push(
      '',
      '# IMAP ([dovecot] imap: STARTTLS; imaps: implicit TLS). Port 0: not offered.',
      'service imap-login {',
      ...listeners('imap', config.dovecot.imap),
      ...listeners('imaps', config.dovecot.imaps),
      '}',
    );
  }
  lines.push(...lmtpService(config, account));
  return `${lines.join('\n')}\n`;
}

/** The sql file of the passdb and userdb, for `postern dovecot sql`. */
export function renderDovecotSqlConf(config: Config): string {
  const dataDir = plainPath(config.data_dir, 'data_dir');
  // %u is the login name after auth_username_format; the driver quotes it (a ' becomes '').
  return [
    "# Dovecot's sql passdb and userdb over Postern's store, printed by `postern dovecot sql`.",
    '# The views are part of Postern\'s schema (migration 5): Dovecot only reads them.',
    'driver = sqlite',
    `connect = ${dataDir}/postern.db`,
    "password_query = SELECT user, password FROM dovecot_passwords WHERE user = '%u'",
    `user_query = SELECT '${dataDir}/mail/' || maildir AS home FROM dovecot_mailboxes WHERE user = '%u'`,
    'iterate_query = SELECT user FROM dovecot_mailboxes',
    '',
  ].join('\n');
}
