// postern user add|list|remove|passwd: accounts that may submit mail (and have a mailbox).

import type { Command } from 'commander';
import { saslprep } from '../auth/saslprep.js';
import { UnpreparablePasswordError } from '../auth/scram-secrets.js';
import { computeUserSecrets, usableMechanisms, type UserSecrets } from '../auth/user-secrets.js';
import type { Config } from '../config/schema.js';
import { normalizeAddress } from '../mail/address.js';
import { withStore } from './admin-store.js';
import { CliError } from './cli-error.js';
import { isoTime, printLine, printList } from './output.js';
import { CONFIG_OPTION, JSON_OPTION, PASSWORD_STDIN_OPTION } from './options.js';
import { generatePassword, readPasswordLine } from './password-input.js';

interface PasswordOptions {
  config?: string;
  passwordStdin?: boolean;
}

export function addUserCommands(program: Command): void {
  const user = program.command('user').description('manage users (mailboxes and submission logins)');

  user
    .command('add')
    .description('add a user; the domain must be local')
    .argument('<address>', 'the address, which is also the login name')
    .option(...PASSWORD_STDIN_OPTION)
    .option(...CONFIG_OPTION)
    .action(async (address: string, opts: PasswordOptions) => {
      const normalized = parseAddress(address);
      const { password, generated } = await obtainPassword(opts);
      await withStore(opts.config, async (store, config) =>
        store.addUser(normalized, await secretsFor(password, config)),
      );
      printLine(generated ? `created ${normalized} with password: ${password}` : `added user ${normalized}`);
    });

  user
    .command('list')
    .description('list users')
    .option('--domain <domain>', 'only the users of this domain')
    .option(...CONFIG_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { config?: string; json?: boolean; domain?: string }) => {
      const users = await withStore(opts.config, (store) => store.listUsers(opts.domain));
      // Never the password hash or keys: list output ends up in terminals, tickets and chat. The
      // mechanisms tell which accounts still need a new password to use SCRAM (set before it existed).
      const width = Math.max(0, ...users.map((u) => u.address.length));
      printList(
        users.map((u) => ({ address: u.address, createdAt: isoTime(u.createdAt), mechanisms: usableMechanisms(u) })),
        opts.json,
        (u) => `${u.address.padEnd(width)}  ${u.mechanisms.join(' ')}`,
      );
    });

  user
    .command('remove')
    .description('remove a user (the mailbox on disk is kept)')
    .argument('<address>', 'the user')
    .option(...CONFIG_OPTION)
    .action(async (address: string, opts: { config?: string }) => {
      const normalized = parseAddress(address);
      if (!(await withStore(opts.config, (store) => store.removeUser(normalized)))) {
        throw new CliError(`user "${normalized}" does not exist (see: postern user list)`);
      }
      printLine(`removed user ${normalized}`);
    });

  user
    .command('passwd')
    .description("set a user's password")
    .argument('<address>', 'the user')
    .option(...PASSWORD_STDIN_OPTION)
    .option(...CONFIG_OPTION)
    .action(async (address: string, opts: PasswordOptions) => {
      const normalized = parseAddress(address);
      const { password, generated } = await obtainPassword(opts);
      const changed = await withStore(opts.config, async (store, config) =>
        store.setUserSecrets(normalized, await secretsFor(password, config)),
      );
      if (!changed) {
        throw new CliError(`user "${normalized}" does not exist; add it with: postern user add ${normalized}`);
      }
      printLine(
        generated
          ? `changed the password of ${normalized} to: ${password}`
          : `changed the password of ${normalized}`,
      );
    });
}

/** Checked before reading a password, so a typo does not waste the operator's input. */
function parseAddress(address: string): string {
  const normalized = normalizeAddress(address);
  if (normalized === undefined) throw new CliError(`"${address}" is not a valid address`);
  return normalized;
}

/** Everything stored for a password; the CRAM-MD5 secret only while [auth] cram_md5 is on. */
async function secretsFor(password: string, config: Config): Promise<UserSecrets> {
  requireSamePasswordForImap(password, config);
  try {
    return await computeUserSecrets(password, {
      cramMd5: config.auth.cram_md5,
      scramIterations: config.auth.scram_iterations,
    });
  } catch (err) {
    if (err instanceof UnpreparablePasswordError) throw new CliError(`${err.message}; choose another password`);
    throw err;
  }
}

/**
 * Dovecot checks IMAP passwords against the SCRAM-SHA-256 keys by hashing the password as typed,
 * without the SASLprep (RFC 4013) that derived the keys (RFC 5802 2.2). For most passwords the
 * two are the same; one that SASLprep changes (a non-ASCII space, a ligature, a full-width letter,
 * a decomposed accent) would work for SMTP and POP3 and never for IMAP, so it is refused while
 * Dovecot serves IMAP for Postern ([dovecot] imap or imaps).
 */
function requireSamePasswordForImap(password: string, config: Config): void {
  if (config.dovecot.imap.length === 0 && config.dovecot.imaps.length === 0) return;
  const prepared = saslprep(password);
  if (prepared === undefined || prepared === password) return; // unpreparable: computeUserSecrets says so
  throw new CliError(
    'this password changes under SASLprep (RFC 4013: non-ASCII spaces, ligatures, full-width letters, decomposed accents), ' +
      'and Dovecot checks IMAP passwords as typed, so it would not work over IMAP; choose another password',
  );
}

async function obtainPassword(opts: PasswordOptions): Promise<{ password: string; generated: boolean }> {
  if (opts.passwordStdin) return { password: await readPasswordLine(process.stdin), generated: false };
  return { password: generatePassword(), generated: true };
}
