// postern user add|list|remove|passwd: accounts that may submit mail (and have a mailbox).

import type { Command } from 'commander';
import { hashPassword } from '../auth/password.js';
import { normalizeAddress } from '../util/address.js';
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
      const hash = await hashPassword(password);
      await withStore(opts.config, (store) => store.addUser(normalized, hash));
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
      // Never the password hash: list output ends up in terminals, tickets and chat.
      printList(
        users.map((u) => ({ address: u.address, createdAt: isoTime(u.createdAt) })),
        opts.json,
        (u) => u.address,
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
      const hash = await hashPassword(password);
      if (!(await withStore(opts.config, (store) => store.setPasswordHash(normalized, hash)))) {
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

async function obtainPassword(opts: PasswordOptions): Promise<{ password: string; generated: boolean }> {
  if (opts.passwordStdin) return { password: await readPasswordLine(process.stdin), generated: false };
  return { password: generatePassword(), generated: true };
}
