// postern doctor [--domain D] [--json]: checks this server as the world sees it (src/doctor/).
// Exit code 0 when nothing FAILs, 1 when something does, 2 for a bad command line; the report
// goes to stdout either way, for people or (--json) as one JSON object for scripts.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { CommanderError, type Command } from 'commander';
import { createDnsClient } from '../dns/resolver.js';
import { runDoctor } from '../doctor/doctor.js';
import type { DoctorReport } from '../doctor/finding.js';
import { changesText, reportChanges } from '../doctor/report-changes.js';
import { reportText } from '../doctor/report-text.js';
import { withStore } from './admin-store.js';
import { CliError } from './cli-error.js';
import { localDomainArgument } from './local-domain.js';
import { CONFIG_OPTION } from './options.js';

/** `postern doctor`'s code for a bad command line: 1 already means "something FAILs". */
const USAGE_EXIT_CODE = 2;

/** DNS answers of resolvers and blocklists that take longer than this are UNKNOWN. */
const DNS_TIMEOUT_MS = 3000;

interface DoctorCliOptions {
  config?: string;
  domain?: string;
  json?: boolean;
  dns: string[];
  address: string[];
  dnsbl: string[];
  changes?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function addDoctorCommand(program: Command, outcome: { exitCode: number }): void {
  program
    .command('doctor')
    .description('check DNS, certificates, listeners, blocklists, postmaster and disk space; exit 1 if anything FAILs')
    .option('--domain <domain>', 'check only this local domain (default: all of them)')
    .option('--json', 'print the report as one JSON object (see README)')
    .option('--address <ip>', "the server's public address, when [listen] does not show it (0.0.0.0, NAT); repeatable", collect, [])
    .option('--dns <server>', 'ask this resolver ("ip" or "ip:port") instead of [relay] dns_servers; repeatable', collect, [])
    .option('--dnsbl <zone>', 'look addresses up in this blocklist instead of [doctor] dnsbl_zones; repeatable', collect, [])
    .option('--changes <file>', 'print only what changed since the report saved in FILE, then save this one there')
    .option(...CONFIG_OPTION)
    // Commander's own usage errors get the usage code too; help and --version keep their 0.
    .exitOverride((err) => {
      throw err.exitCode === 0 ? err : new CommanderError(USAGE_EXIT_CODE, err.code, err.message);
    })
    .action(async (opts: DoctorCliOptions) => {
      for (const address of opts.address) {
        if (isIP(address) === 0) throw usage(`--address "${address}" is not an IP address (e.g. 192.0.2.25 or 2001:db8::25)`);
      }
      const report = await withStore(opts.config, async (store, config) => {
        let dns;
        const servers = opts.dns.length > 0 ? opts.dns : config.relay.dns_servers;
        try {
          dns = createDnsClient({ servers, timeoutMs: DNS_TIMEOUT_MS });
        } catch (err) {
          throw usage(`--dns: ${(err as Error).message} (expected "ip" or "ip:port", e.g. 127.0.0.1:5353)`);
        }
        const domains = opts.domain === undefined ? (await store.listDomains()).map((d) => d.name) : [await asUsage(localDomainArgument(store, opts.domain))];
        const dnsblZones = opts.dnsbl.length > 0 ? opts.dnsbl : config.doctor.dnsbl_zones;
        return runDoctor({ config, store, dns, dnsServers: servers, domains, addresses: opts.address, dnsblZones });
      });
      if (opts.changes === undefined) {
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : reportText(report));
      } else {
        const changes = reportChanges(readPreviousReport(opts.changes), report);
        saveReport(opts.changes, report);
        if (opts.json) process.stdout.write(`${JSON.stringify(changes, null, 2)}\n`);
        else process.stdout.write(changesText(changes));
      }
      outcome.exitCode = report.ok ? 0 : 1;
    });
}

/** The report a previous run saved; undefined when there is none yet. */
function readPreviousReport(path: string): DoctorReport | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`--changes: cannot read "${path}": ${(err as Error).message}`);
  }
  try {
    const report = JSON.parse(text) as DoctorReport;
    if (!Array.isArray(report.findings)) throw new Error('no "findings" array');
    return report;
  } catch (err) {
    throw new CliError(`--changes: "${path}" is not a report saved by postern doctor (${(err as Error).message}); remove it to start afresh`);
  }
}

/** Written whole, then renamed over the old one: a crash leaves the old report or the new one, never half. */
function saveReport(path: string, report: DoctorReport): void {
  const temporary = `${path}.tmp`;
  try {
    writeFileSync(temporary, `${JSON.stringify(report, null, 2)}\n`);
    renameSync(temporary, path);
  } catch (err) {
    throw new CliError(`--changes: cannot write "${path}": ${(err as Error).message}`);
  }
}

function usage(message: string): CliError {
  return new CliError(message, USAGE_EXIT_CODE);
}

/** A mistake in the command's arguments found by the store (an unknown domain) is a usage error too. */
async function asUsage<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw err instanceof CliError ? usage(err.message) : err;
  }
}
