// postern user limits|grant|revoke|grants: what an account may send (src/policy/rate-limits.ts,
// sender-identity.ts). Added to the "user" command that user-commands.ts defines.

import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { SenderPolicy, UserLimits, UserLimitsChange } from '../store/store.js';
import { normalizeAliasSource } from '../store/alias-source.js';
import { normalizeAddress } from '../mail/address.js';
import { withStore } from './admin-store.js';
import { CliError } from './cli-error.js';
import { printLine, printList } from './output.js';
import { CONFIG_OPTION, JSON_OPTION } from './options.js';

interface LimitsOptions {
  config?: string;
  json?: boolean;
  messagesPerHour?: number | 'default';
  recipientsPerDay?: number | 'default';
  senderPolicy?: SenderPolicy | 'default';
}

/** Call after addUserCommands, whose "user" command these join. */
export function addUserPolicyCommands(program: Command): void {
  const user = program.commands.find((c) => c.name() === 'user');
  if (!user) throw new Error('addUserPolicyCommands needs the "user" command: call addUserCommands first');

  user
    .command('limits')
    .description("show or change an account's sending limits and sender policy ('default' clears an override)")
    .argument('<address>', 'the user')
    .option('--messages-per-hour <n>', 'messages per hour; 0 = unlimited', parseLimit)
    .option('--recipients-per-day <n>', 'recipients per day; 0 = unlimited', parseLimit)
    .addOption(
      new Option('--sender-policy <policy>', 'strict: only own addresses as sender; any: no check').choices([
        'strict',
        'any',
        'default',
      ]),
    )
    .option(...CONFIG_OPTION)
    .option(...JSON_OPTION)
    .action(async (address: string, opts: LimitsOptions) => {
      const account = parseAddress(address);
      const change = limitsChange(opts);
      const limits = await withStore(opts.config, async (store) => {
        if (Object.keys(change).length > 0) {
          await store.setUserLimits(account, change);
        } else if (!(await store.getUser(account))) {
          throw new CliError(`user "${account}" does not exist (see: postern user list)`);
        }
        return store.getUserLimits(account);
      });
      showLimits(account, limits, opts);
    });

  user
    .command('grant')
    .description('let a user send as another address, or as any address of a domain ("@domain")')
    .argument('<address>', 'the user')
    .argument('<sender>', 'an address, or "@domain"')
    .option(...CONFIG_OPTION)
    .action(async (address: string, sender: string, opts: { config?: string }) => {
      const account = parseAddress(address);
      const grant = parseGrant(sender);
      await withStore(opts.config, (store) => store.addSenderGrant(account, grant));
      printLine(`${account} may now send as ${grant}`);
    });

  user
    .command('revoke')
    .description('take back a grant made with "user grant"')
    .argument('<address>', 'the user')
    .argument('<sender>', 'the granted address, or "@domain"')
    .option(...CONFIG_OPTION)
    .action(async (address: string, sender: string, opts: { config?: string }) => {
      const account = parseAddress(address);
      const grant = parseGrant(sender);
      if (!(await withStore(opts.config, (store) => store.removeSenderGrant(account, grant)))) {
        throw new CliError(`${account} has no grant for "${grant}" (see: postern user grants ${account})`);
      }
      printLine(`${account} may no longer send as ${grant}`);
    });

  user
    .command('grants')
    .description('list the extra addresses a user may send as')
    .argument('<address>', 'the user')
    .option(...CONFIG_OPTION)
    .option(...JSON_OPTION)
    .action(async (address: string, opts: { config?: string; json?: boolean }) => {
      const account = parseAddress(address);
      const grants = await withStore(opts.config, async (store) => {
        if (!(await store.getUser(account))) {
          throw new CliError(`user "${account}" does not exist (see: postern user list)`);
        }
        return store.listSenderGrants(account);
      });
      printList(grants, opts.json, (g) => g);
    });
}

/** A whole number >= 0, or "default" (clear the override; commander would turn null into ''). */
function parseLimit(value: string): number | 'default' {
  if (value === 'default') return value;
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError('expected a whole number >= 0, or "default"');
  return Number(value);
}

function limitsChange(opts: LimitsOptions): UserLimitsChange {
  return {
    ...(opts.messagesPerHour !== undefined && { maxMessagesPerHour: orNull(opts.messagesPerHour) }),
    ...(opts.recipientsPerDay !== undefined && { maxRecipientsPerDay: orNull(opts.recipientsPerDay) }),
    ...(opts.senderPolicy !== undefined && { senderPolicy: orNull(opts.senderPolicy) }),
  };
}

function orNull<T>(value: T | 'default'): T | null {
  return value === 'default' ? null : value;
}

/** The limits in force: the account's overrides, else the [submission] defaults. */
function showLimits(account: string, limits: UserLimits, opts: LimitsOptions): void {
  const defaults = loadConfig(opts.config).config.submission;
  const shown = {
    account,
    messagesPerHour: limits.maxMessagesPerHour ?? defaults.max_messages_per_hour,
    recipientsPerDay: limits.maxRecipientsPerDay ?? defaults.max_recipients_per_day,
    senderPolicy: limits.senderPolicy ?? defaults.sender_policy,
    overrides: Object.keys(limits),
  };
  if (opts.json) {
    printLine(JSON.stringify(shown, null, 2));
    return;
  }
  const note = (set: unknown): string => (set === undefined ? ' (default)' : '');
  printLine(account);
  printLine(`  messages per hour:  ${unlimited(shown.messagesPerHour)}${note(limits.maxMessagesPerHour)}`);
  printLine(`  recipients per day: ${unlimited(shown.recipientsPerDay)}${note(limits.maxRecipientsPerDay)}`);
  printLine(`  sender policy:      ${shown.senderPolicy}${note(limits.senderPolicy)}`);
}

function unlimited(n: number): string {
  return n === 0 ? 'unlimited' : String(n);
}

function parseAddress(address: string): string {
  const normalized = normalizeAddress(address);
  if (normalized === undefined) throw new CliError(`"${address}" is not a valid address`);
  return normalized;
}

function parseGrant(sender: string): string {
  const normalized = normalizeAliasSource(sender);
  if (normalized === undefined) {
    throw new CliError(`"${sender}" is not a valid sender: use an address, or "@domain" for a whole domain`);
  }
  return normalized;
}
