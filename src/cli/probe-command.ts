// postern probe HOST: tests a mail server the way an expert would (src/probe/). Exit code 0 when
// nothing FAILs, 1 when something does, 2 for a usage error (so scripts can tell "the server has
// a problem" from "the command was wrong"). The password of --user comes from stdin only.

import { readFileSync } from 'node:fs';
import { type Command, CommanderError } from 'commander';
import { DEFAULT_PORTS, ROLES, type ProbeRole } from '../probe/report.js';
import { ProbeError, runProbe, type ProbeOptions } from '../probe/probe.js';
import { reportText } from '../probe/report-text.js';
import { CliError } from './cli-error.js';
import { readPasswordLine } from './password-input.js';

interface ProbeCliOptions {
  mx?: string;
  submission?: string;
  submissions?: string;
  only?: string;
  user?: string;
  passwordStdin?: boolean;
  rcpt?: string;
  dns?: string;
  ca?: string;
  timeout?: string;
  json?: boolean;
}

export function addProbeCommand(program: Command, outcome: { exitCode: number }): void {
  program
    .command('probe')
    .description('test a mail server from the outside: greeting, EHLO, TLS, AUTH, open relay, enumeration, smuggling, STARTTLS injection')
    .argument('<host>', 'the mail server\'s host name, e.g. mail.example.com')
    .option('--mx <port>', `MX port (default ${DEFAULT_PORTS.mx})`)
    .option('--submission <port>', `submission port, STARTTLS (default ${DEFAULT_PORTS.submission})`)
    .option('--submissions <port>', `submissions port, implicit TLS (default ${DEFAULT_PORTS.submissions})`)
    .option('--only <roles>', 'probe only these, comma-separated: mx,submission,submissions')
    .option('--user <address>', 'log in as this account (over TLS only); needs --password-stdin')
    .option('--password-stdin', 'read the password of --user from the first line of stdin')
    .option('--rcpt <address>', 'a real local address: compare RCPT answers, and send it one test message (SMTP smuggling)')
    .option('--dns <server>', 'DNS server for the A and PTR lookups, e.g. 127.0.0.1:5353 (default: the system\'s)')
    .option('--ca <file>', 'PEM file of CA certificates to trust besides the system\'s')
    .option('--timeout <seconds>', 'wait at most this long for each reply (default 30)')
    .option('--json', 'print the report as JSON (shape: README, "postern probe")')
    // Commander's own complaints (unknown option, missing host) are usage errors too: exit 2.
    .exitOverride((err) => {
      throw err.exitCode === 0 ? err : new CommanderError(2, err.code, err.message);
    })
    .action(async (host: string, opts: ProbeCliOptions) => {
      const options = await probeOptions(host, opts);
      let report;
      try {
        report = await runProbe(options);
      } catch (err) {
        if (err instanceof ProbeError) throw usage(err.message);
        throw err;
      }
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : reportText(report));
      outcome.exitCode = report.counts.FAIL > 0 ? 1 : 0;
    });
}

function usage(message: string): CliError {
  return new CliError(message, 2);
}

async function probeOptions(host: string, opts: ProbeCliOptions): Promise<ProbeOptions> {
  if (!/^[A-Za-z0-9.-]+$|^[0-9a-fA-F:.]+$/.test(host)) throw usage(`"${host}" is not a host name: give the server's name, e.g. mail.example.com`);
  const ports: Partial<Record<ProbeRole, number>> = {};
  for (const role of ROLES) {
    const value = opts[role];
    if (value === undefined) continue;
    const port = Number(value);
    if (!/^\d+$/.test(value) || port < 1 || port > 65535) throw usage(`--${role} ${value} is not a port: give a number from 1 to 65535`);
    ports[role] = port;
  }
  let only: ProbeRole[] | undefined;
  if (opts.only !== undefined) {
    only = [];
    for (const name of opts.only.split(',').map((s) => s.trim())) {
      if (!(ROLES as readonly string[]).includes(name)) throw usage(`--only ${opts.only}: "${name}" is not one of mx, submission, submissions`);
      only.push(name as ProbeRole);
    }
  }
  if (opts.user !== undefined && !opts.passwordStdin) throw usage('--user needs --password-stdin: pipe the password in (it is never taken on the command line)');
  if (opts.passwordStdin && opts.user === undefined) throw usage('--password-stdin needs --user: name the account to log in as');
  if (opts.rcpt !== undefined && !/^[^@\s<>]+@[A-Za-z0-9.-]+$/.test(opts.rcpt)) throw usage(`--rcpt ${opts.rcpt} is not an address: give a real local address, e.g. postmaster@example.com`);
  let timeoutMs: number | undefined;
  if (opts.timeout !== undefined) {
    const s = Number(opts.timeout);
    if (!Number.isFinite(s) || s <= 0 || s > 600) throw usage(`--timeout ${opts.timeout}: give seconds from 1 to 600`);
    timeoutMs = s * 1000;
  }
  let ca: string[] | undefined;
  if (opts.ca !== undefined) {
    try {
      ca = [readFileSync(opts.ca, 'utf8')];
    } catch (err) {
      throw usage(`--ca ${opts.ca}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  let user: { username: string; password: string } | undefined;
  if (opts.user !== undefined) {
    try {
      user = { username: opts.user, password: await readPasswordLine(process.stdin) };
    } catch (err) {
      throw err instanceof CliError ? usage(err.message) : err;
    }
  }
  return {
    host,
    ports,
    ...(only ? { only } : {}),
    ...(opts.dns ? { dnsServers: [opts.dns] } : {}),
    ...(user ? { user } : {}),
    ...(opts.rcpt ? { rcpt: opts.rcpt } : {}),
    ...(ca ? { ca } : {}),
    ...(timeoutMs ? { replyTimeoutMs: timeoutMs } : {}),
  };
}
