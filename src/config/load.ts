// Loading the configuration: find the file, parse TOML, validate against the schema, resolve
// relative paths. Every failure is a ConfigError whose message is ONE line naming the file and
// the key, because it is what `postern check-config` and a failed start print to the operator.

import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { configSchema } from './schema.js';
import type { Config } from './schema.js';
import { explainIssue } from './explain-issue.js';

export interface LoadedConfig {
  readonly config: Config;
  /** Absolute path of the file read, or undefined when the built-in defaults are in use. */
  readonly path: string | undefined;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const DEFAULT_FILE = 'postern.toml';

/**
 * Loads `path`, or ./postern.toml when it exists, or else the built-in defaults. Relative paths
 * in the file are resolved against the file's directory (the CWD for the defaults).
 */
export function loadConfig(path?: string): LoadedConfig {
  const file = path ?? (readableFile(DEFAULT_FILE) === 'no such file' ? undefined : DEFAULT_FILE);
  if (file === undefined) {
    return { config: resolvePaths(validate({}, 'built-in defaults'), process.cwd()), path: undefined };
  }
  const absolute = resolve(file);
  const raw = parse(readText(file), file);
  const config = resolvePaths(validate(raw, file), dirname(absolute));
  checkTlsFiles(config, file);
  return { config, path: absolute };
}

function readText(file: string): string {
  const problem = readableFile(file);
  if (problem === 'no such file') throw new ConfigError(`config file "${file}" not found`);
  if (problem !== 'ok') throw new ConfigError(`cannot read config file "${file}": ${problem}`);
  return readFileSync(file, 'utf8');
}

function parse(text: string, file: string): unknown {
  try {
    return parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      // smol-toml's message is "Invalid TOML document: <what>" followed by a code excerpt.
      const what = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigError(`${file} line ${err.line}: TOML syntax error: ${what}`);
    }
    throw err;
  }
}

function validate(raw: unknown, file: string): Config {
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (result.success) return result.data;
  const [first, ...rest] = result.error.issues;
  const more = rest.length > 0 ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : '';
  throw new ConfigError(`${file}: ${first ? explainIssue(first, configSchema) : 'invalid configuration'}${more}`);
}

function resolvePaths(config: Config, base: string): Config {
  const tls = { ...config.tls };
  if (tls.cert !== undefined) tls.cert = resolve(base, tls.cert);
  if (tls.key !== undefined) tls.key = resolve(base, tls.key);
  tls.certificates = tls.certificates.map((c) => ({ ...c, cert: resolve(base, c.cert), key: resolve(base, c.key) }));
  const oauth = config.auth.oauth && { ...config.auth.oauth, jwks_file: resolve(base, config.auth.oauth.jwks_file) };
  return { ...config, data_dir: resolve(base, config.data_dir), tls, auth: { ...config.auth, oauth } };
}

/** Fails at load time, not at the first STARTTLS, when a configured certificate is unusable. */
function checkTlsFiles(config: Config, file: string): void {
  for (const key of ['cert', 'key'] as const) {
    const path = config.tls[key];
    if (path === undefined) continue;
    const problem = readableFile(path);
    if (problem !== 'ok') {
      throw new ConfigError(
        `${file}: tls.${key}: cannot read "${path}": ${problem}; fix the path or remove [tls] to use a generated self-signed certificate`,
      );
    }
  }
  config.tls.certificates.forEach((entry, i) => {
    for (const key of ['cert', 'key'] as const) {
      const problem = readableFile(entry[key]);
      if (problem !== 'ok') {
        throw new ConfigError(`${file}: tls.certificates[${i}].${key}: cannot read "${entry[key]}": ${problem}`);
      }
    }
  });
}

/** "ok", or why the file cannot be read, in words (not errno names). */
function readableFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    switch (code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return 'no such file';
      case 'EACCES':
      case 'EPERM':
        return 'permission denied';
      default:
        return (err as Error).message;
    }
  }
  try {
    return fstatSync(fd).isFile() ? 'ok' : 'not a regular file';
  } finally {
    closeSync(fd);
  }
}
