// The `postern` command. Every failure ends as ONE line on stderr, "postern: <what is wrong and
// how to fix it>", and exit code 1: operators read it, scripts test the code, and a stack trace
// helps neither (the server's own errors go to its log instead).

import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import { serviceAccount } from '../util/privileges.js';
import { addAliasCommands } from './alias-commands.js';
import { addDkimCommands } from './dkim-commands.js';
import { CliError } from './cli-error.js';
import { addDnsCommands } from './dns-commands.js';
import { addDoctorCommand } from './doctor-command.js';
import { addDovecotCommands } from './dovecot-commands.js';
import { addDomainCommands } from './domain-commands.js';
import { addProbeCommand } from './probe-command.js';
import { addQueueCommands } from './queue-commands.js';
import { addUserCommands } from './user-commands.js';
import { addUserPolicyCommands } from './user-policy-commands.js';
import { printLine } from './output.js';
import { CONFIG_OPTION } from './options.js';

/** Runs the command in argv (as process.argv: node, script, args...) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const outcome = { exitCode: 0 };
  const program = buildProgram(outcome);
  try {
    await program.parseAsync(moveLeadingConfigOption(argv));
    return outcome.exitCode;
  } catch (err) {
    return report(err);
  }
}

function buildProgram(outcome: { exitCode: number }): Command {
  const program = new Command('postern')
    .description('Postern mail server: MX, submission, relay and Maildir delivery')
    .version(packageVersion(), '-V, --version')
    // Settings inherited by every subcommand defined below, hence set first: throw instead of
    // exiting, and leave error output to report() so it stays one line.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      // Only help goes through writeErr (errors go through outputError), and help is for stdout.
      writeErr: (text) => process.stdout.write(text),
      outputError: () => {},
    });

  program
    .command('serve')
    .description('run the mail server')
    .option(...CONFIG_OPTION)
    .addOption(new Option('--log-format <format>', 'log lines as JSON or for people').choices(['json', 'pretty']))
    .action(async (opts: { config?: string; logFormat?: 'json' | 'pretty' }) => {
      // Loaded on demand: admin commands need none of the server's code.
      const { runServer } = await import('../server/server.js');
      outcome.exitCode = await runServer({ configPath: opts.config, logFormat: opts.logFormat });
    });

  program
    .command('check-config')
    .description('check the configuration file and exit')
    .option(...CONFIG_OPTION)
    .action((opts: { config?: string }) => {
      const { config, path } = loadConfig(opts.config);
      // As root this also checks that the account to run as exists, which serve would need.
      serviceAccount(config);
      printLine(`config OK: ${path ?? 'built-in defaults'}`);
    });

  addDomainCommands(program);
  addUserCommands(program);
  addUserPolicyCommands(program);
  addAliasCommands(program);
  addQueueCommands(program);
  addDkimCommands(program);
  addDnsCommands(program);
  addDoctorCommand(program, outcome);
  addDovecotCommands(program);
  addProbeCommand(program, outcome);
  return program;
}

/**
 * Lets `postern --config F domain add X` mean `postern domain add X --config F`: the option is
 * declared on each command (so every command's help shows it), and commander only reads a
 * command's options after its name, so a leading one is moved to the end.
 */
export function moveLeadingConfigOption(argv: readonly string[]): string[] {
  const [node = '', script = '', ...args] = argv;
  const moved: string[] = [];
  let i = 0;
  for (let arg = args[i]; arg !== undefined && arg.startsWith('--config'); arg = args[i]) {
    const value = args[i + 1];
    if (arg === '--config' && value !== undefined) {
      moved.push(arg, value);
      i += 2;
    } else if (arg.startsWith('--config=')) {
      moved.push(arg);
      i += 1;
    } else {
      break;
    }
  }
  return [node, script, ...args.slice(i), ...moved];
}

function report(err: unknown): number {
  if (err instanceof CommanderError) {
    // --help and --version end with a CommanderError too, with exit code 0.
    if (err.exitCode === 0) return 0;
    // A command group without its subcommand ("postern domain") has just printed its help.
    const text =
      err.code === 'commander.help' || err.code === 'commander.helpDisplayed'
        ? 'missing command: choose one of the commands listed above'
        : `${err.message.replace(/^error:\s*/, '')} (see: postern --help)`;
    printError(text);
    return err.exitCode || 1;
  }
  printError(err instanceof Error ? err.message : String(err));
  return err instanceof CliError ? err.exitCode : 1;
}

function printError(message: string): void {
  const oneLine = message.replace(/\s*\n\s*/g, ' ').trim();
  process.stderr.write(`postern: ${oneLine}\n`);
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
