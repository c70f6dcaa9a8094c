// postern alias add|list|remove: extra addresses that forward to users or elsewhere.

import type { Command } from 'commander';
import { normalizeAliasSource } from '../store/alias-source.js';
import { normalizeAddress } from '../mail/address.js';
import { withStore } from './admin-store.js';
import { CliError } from './cli-error.js';
import { printLine, printList } from './output.js';
import { CONFIG_OPTION, JSON_OPTION } from './options.js';

export function addAliasCommands(program: Command): void {
  const alias = program.command('alias').description('manage aliases (and catch-alls)');

  alias
    .command('add')
    .description('deliver mail for SOURCE to TARGET; SOURCE "@domain" catches all of a local domain')
    .argument('<source>', 'an address of a local domain, or "@domain"')
    .argument('<target>', 'a local user or any other address')
    .option(...CONFIG_OPTION)
    .action(async (source: string, target: string, opts: { config?: string }) => {
      await withStore(opts.config, (store) => store.addAlias(source, target));
      printLine(`added alias ${shownSource(source)} -> ${normalizeAddress(target) ?? target}`);
    });

  alias
    .command('list')
    .description('list aliases')
    .option(...CONFIG_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { config?: string; json?: boolean }) => {
      const aliases = await withStore(opts.config, (store) => store.listAliases());
      printList(aliases, opts.json, (a) => `${a.source} -> ${a.target}`);
    });

  alias
    .command('remove')
    .description('remove one target of an alias, or all of them')
    .argument('<source>', 'the alias')
    .argument('[target]', 'only this target (default: all targets)')
    .option(...CONFIG_OPTION)
    .action(async (source: string, target: string | undefined, opts: { config?: string }) => {
      const from = shownSource(source);
      const to = target === undefined ? undefined : (normalizeAddress(target) ?? target);
      if (!(await withStore(opts.config, (store) => store.removeAlias(source, target)))) {
        const what = to === undefined ? `"${from}"` : `"${from}" -> "${to}"`;
        throw new CliError(`alias ${what} does not exist (see: postern alias list)`);
      }
      printLine(to === undefined ? `removed alias ${from}` : `removed alias ${from} -> ${to}`);
    });
}

function shownSource(source: string): string {
  return normalizeAliasSource(source) ?? source;
}
