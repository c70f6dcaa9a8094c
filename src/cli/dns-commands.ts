// postern dns DOMAIN [--json]: every DNS record a local domain needs (src/publish/dns-records.ts),
// as zone-file lines to paste, or as a JSON array for scripts and DNS provider APIs. In the JSON
// form the notes, which the zone text carries as comments, go to stderr: stdout stays one array.

import type { Command } from 'commander';
import { readDkimKey } from '../dkim/dkim-key.js';
import { domainRecords } from '../publish/dns-records.js';
import { zoneFileText } from '../publish/zone-file.js';
import { withStore } from './admin-store.js';
import { localDomainArgument } from './local-domain.js';
import { CONFIG_OPTION } from './options.js';

export function addDnsCommands(program: Command): void {
  program
    .command('dns')
    .description('print the DNS records to publish for a local domain: MX, SPF, DKIM, DMARC, SRV, MTA-STS, TLS-RPT')
    .argument('<domain>', 'a local domain, e.g. example.com')
    .option('--json', 'print a JSON array of records instead of zone-file lines')
    .option(...CONFIG_OPTION)
    .action(async (name: string, opts: { config?: string; json?: boolean }) => {
      // withStore: the domain must be local, and the 0600 DKIM key is read as the service account.
      const result = await withStore(opts.config, async (store, config) => {
        const domain = await localDomainArgument(store, name);
        return domainRecords(config, domain, readDkimKey(config, domain));
      });
      if (!opts.json) {
        process.stdout.write(zoneFileText(result));
        return;
      }
      for (const note of result.notes) process.stderr.write(`postern: note: ${note}\n`);
      process.stdout.write(`${JSON.stringify(result.records, null, 2)}\n`);
    });
}
