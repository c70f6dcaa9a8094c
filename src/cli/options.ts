// Options shared by the commands, as (flags, description) pairs for Command.option().

export const CONFIG_OPTION = ['--config <file>', 'configuration file (default: ./postern.toml, else built-in defaults)'] as const;
export const JSON_OPTION = ['--json', 'print a JSON array instead of lines'] as const;
export const PASSWORD_STDIN_OPTION = [
  '--password-stdin',
  'read the password from the first line of stdin (default: generate one and print it)',
] as const;
