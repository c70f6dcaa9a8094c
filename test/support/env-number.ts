// Numbers that the longer jobs (npm run fuzz, crash and bench, and bench/cost.ts) take from
// the environment: a bad value stops the job with one line naming the variable and a value that
// would do.

/** The positive whole number in `process.env[name]`, or `fallback` when it is unset or empty. */
export function positiveFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    console.error(`${name}=${text} is not a positive whole number; unset it or give one, e.g. ${name}=${fallback}`);
    process.exit(1);
  }
  return value;
}

/** Like positiveFromEnv, for a setting that is off when unset or empty (`example` for the message). */
export function optionalPositiveFromEnv(name: string, example: number): number | undefined {
  const text = process.env[name];
  return text === undefined || text === '' ? undefined : positiveFromEnv(name, example);
}
