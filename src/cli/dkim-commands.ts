// postern dkim generate|show: the keys that sign outbound mail of local domains (src/dkim/).
// Both print the DNS TXT record to publish, as a zone-file line after a ";" comment, so the
// output can be pasted into a zone as it is.

import { mkdirSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Option } from 'commander';
import type { Config } from '../config/schema.js';
import {
  dkimKeyPath,
  dkimKeysDir,
  generateDkimPrivateKey,
  parseDkimKey,
  readDkimKey,
  type DkimAlgorithm,
  type DkimKey,
} from '../dkim/dkim-key.js';
import { dkimRecord, formatDkimRecord } from '../dkim/dkim-record.js';
import { withStore } from './admin-store.js';
import { CliError } from './cli-error.js';
import { domainArgument, localDomainArgument } from './local-domain.js';
import { printLine } from './output.js';
import { CONFIG_OPTION } from './options.js';

const SELECTOR_OPTION = ['--selector <name>', 'the key selector (default: [dkim] selector)'] as const;

interface GenerateOptions {
  config?: string;
  algorithm: DkimAlgorithm;
  selector?: string;
  force?: boolean;
}

export function addDkimCommands(program: Command): void {
  const dkim = program.command('dkim').description('manage the DKIM keys that sign outbound mail');

  dkim
    .command('generate')
    .description('create the DKIM key of a local domain and print the DNS record to publish')
    .argument('<domain>', 'a local domain, e.g. example.com')
    .addOption(
      // RSA by default: RFC 8463 keys are not yet verified by every receiver.
      new Option('--algorithm <algorithm>', 'key type').choices(['rsa', 'ed25519']).default('rsa'),
    )
    .option(...SELECTOR_OPTION)
    .option('--force', 'replace an existing key (mail signed with the old one stops verifying)')
    .option(...CONFIG_OPTION)
    .action(async (name: string, opts: GenerateOptions) => {
      const key = await withStore(opts.config, async (store, config) => writeKey(config, await localDomainArgument(store, name), opts));
      printRecord(key, 'generated');
    });

  dkim
    .command('show')
    .description('print the DNS record of a domain\'s DKIM key again')
    .argument('<domain>', 'the domain')
    .option(...SELECTOR_OPTION)
    .option(...CONFIG_OPTION)
    .action(async (name: string, opts: { config?: string; selector?: string }) => {
      // withStore: read as the service account that owns the 0600 key file.
      const key = await withStore(opts.config, async (_store, config) => readKey(config, domainArgument(name), opts.selector));
      printRecord(key, 'found');
    });
}

function writeKey(config: Config, domain: string, opts: GenerateOptions): DkimKey {
  const selector = opts.selector ?? config.dkim.selector;
  const keysDir = dkimKeysDir(config);
  const path = dkimKeyPath(keysDir, domain, selector);
  const pem = generateDkimPrivateKey(opts.algorithm);
  // Private keys: readable by the service account only (we run as it by now).
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  try {
    // "wx" refuses to overwrite: a replaced key breaks verification of mail already sent.
    writeFileSync(path, pem, { mode: 0o600, flag: opts.force ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError(
        `${domain} already has a key with selector "${selector}" (${path}); to rotate keys use a new --selector, or --force to replace it`,
      );
    }
    throw err;
  }
  return parseDkimKey(pem, domain, selector);
}

function readKey(config: Config, domain: string, selectorOption: string | undefined): DkimKey {
  const selector = selectorOption ?? config.dkim.selector;
  const key = readDkimKey(config, domain, selector);
  if (key === undefined) {
    throw new CliError(`${domain} has no DKIM key with selector "${selector}" (create one: postern dkim generate ${domain})`);
  }
  return key;
}

function printRecord(key: DkimKey, verb: 'generated' | 'found'): void {
  printLine(`; DKIM ${key.algorithm} key ${verb} for ${key.domain}, selector "${key.selector}"; publish this record:`);
  printLine(formatDkimRecord(dkimRecord(key)));
}
