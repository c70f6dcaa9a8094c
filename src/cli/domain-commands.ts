// postern domain add|list|remove: the domains we accept mail for (the MX's local domains).

import type { Command } from 'commander';
import { normalizeDomain } from '../mail/address.js';
import { withStore } from './admin-store.js';
import { CliError } from './cli-error.js';
import { isoTime, printLine, printList } from './output.js';
import { CONFIG_OPTION, JSON_OPTION } from './options.js';

export function addDomainCommands(program: Command): void {
  const domain = program.command('domain').description('manage the domains we receive mail for');

  domain
    .command('add')
    .description('add a local domain')
    .argument('<name>', 'domain name, e.g. example.com')
    .option(...CONFIG_OPTION)
    .action(async (name: string, opts: { config?: string }) => {
      await withStore(opts.config, (store) => store.addDomain(name));
      printLine(`added domain ${normalizeDomain(name) ?? name}`);
    });

  domain
    .command('list')
    .description('list the local domains')
    .option(...CONFIG_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { config?: string; json?: boolean }) => {
      const domains = await withStore(opts.config, (store) => store.listDomains());
      printList(
        domains.map((d) => ({ name: d.name, createdAt: isoTime(d.createdAt) })),
        opts.json,
        (d) => d.name,
      );
    });

  domain
    .command('remove')
    .description('remove a local domain (after its users and aliases)')
    .argument('<name>', 'domain name')
    .option(...CONFIG_OPTION)
    .action(async (name: string, opts: { config?: string }) => {
      const shown = normalizeDomain(name) ?? name;
      if (!(await withStore(opts.config, (store) => store.removeDomain(name)))) {
        throw new CliError(`domain "${shown}" does not exist (see: postern domain list)`);
      }
      printLine(`removed domain ${shown}`);
    });
}
