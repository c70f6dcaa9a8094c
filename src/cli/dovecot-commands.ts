// postern dovecot config|sql: Dovecot's configuration for IMAP (and LMTP) over Postern's Maildirs
// and accounts (see dovecot-config.ts for how it works). Both only print; the operator installs:
//   postern dovecot config > /etc/dovecot/dovecot.conf
//   postern dovecot sql > /etc/dovecot/postern-sql.conf.ext

import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { certificateNames, generatedPaths, TLS12_CIPHERS } from '../tls/tls-credentials.js';
import { serviceAccount } from '../util/privileges.js';
import { CliError } from './cli-error.js';
import { renderDovecotConf, renderDovecotSqlConf, type CertificatePair, type DovecotSetup, type MailAccount } from './dovecot-config.js';
import { CONFIG_OPTION } from './options.js';

const DEFAULT_SQL_FILE = '/etc/dovecot/postern-sql.conf.ext';

export function addDovecotCommands(program: Command): void {
  const dovecot = program.command('dovecot').description("configuration for Dovecot, which serves IMAP over Postern's mailboxes");

  dovecot
    .command('config')
    .description("print dovecot.conf (Dovecot 2.3) for IMAP and LMTP over Postern's Maildirs and accounts")
    .option('--sql-file <file>', 'where the output of `postern dovecot sql` is installed', DEFAULT_SQL_FILE)
    .option(...CONFIG_OPTION)
    .action((opts: { config?: string; sqlFile: string }) => {
      const { config } = loadConfig(opts.config);
      process.stdout.write(renderDovecotConf(config, setupFor(config, resolve(opts.sqlFile))));
    });

  dovecot
    .command('sql')
    .description("print the file of Dovecot's sql passdb and userdb: Postern's store and the queries")
    .option(...CONFIG_OPTION)
    .action((opts: { config?: string }) => {
      process.stdout.write(renderDovecotSqlConf(loadConfig(opts.config).config));
    });
}

function setupFor(config: Config, sqlConfPath: string): DovecotSetup {
  return {
    account: mailAccount(config),
    sqlConfPath,
    tls: defaultCertificate(config),
    sni: config.tls.certificates.flatMap((entry) =>
      (entry.names ?? certificateNames(readFileSync(entry.cert, 'utf8'))).map((name) => ({ name, cert: entry.cert, key: entry.key })),
    ),
    tls12Ciphers: TLS12_CIPHERS,
  };
}

/** The account Postern runs as: the service account when we are root, else whoever runs Postern (us). */
function mailAccount(config: Config): MailAccount {
  const account = serviceAccount(config);
  if (account) return account;
  const me = userInfo();
  return { user: me.username, uid: me.uid, gid: me.gid };
}

function defaultCertificate(config: Config): CertificatePair {
  if (config.tls.cert !== undefined && config.tls.key !== undefined) return { cert: config.tls.cert, key: config.tls.key };
  const { certPath, keyPath } = generatedPaths(config.data_dir);
  if (!existsSync(certPath)) {
    throw new CliError(
      `the generated certificate "${certPath}" does not exist yet: start \`postern serve\` once (it creates it), or set [tls] cert and key`,
    );
  }
  return { cert: certPath, key: keyPath };
}
