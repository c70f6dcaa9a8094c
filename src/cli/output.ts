// What admin commands print: plain lines for people, a JSON array with --json for scripts.

export function printLine(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function printList<T>(items: readonly T[], json: boolean | undefined, asLine: (item: T) => string): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
    return;
  }
  for (const item of items) printLine(asLine(item));
}

/** Store times are milliseconds since the epoch; scripts get ISO 8601. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
