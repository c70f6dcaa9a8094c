// Durations in the config are written the way Postfix and operators write them: "90s", "5m",
// "4h", "5d", "1w", or combined ("1h30m"). A bare number means seconds. Parsed once, at load time,
// into milliseconds, so nothing else in the code guesses at units.

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;

/** Milliseconds for "5m", "1h30m", "250ms", "2.5s" or "30" (seconds); undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (/^\d+(?:\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  let total = 0;
  let at = 0;
  PART.lastIndex = 0;
  while (at < t.length) {
    PART.lastIndex = at;
    const m = PART.exec(t);
    if (!m) return undefined;
    // PART only matches the units UNIT_MS has, so both lookups find something.
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = PART.lastIndex;
  }
  return Math.round(total);
}

/** The same as parseDuration, but throws with the offending text (for code paths past validation). */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`bad duration "${text}": expected e.g. "30s", "5m", "4h", "5d"`);
  return ms;
}

/** Short human form for logs and the queue CLI: "3d4h", "5m", "12s", "0s". */
export function formatDuration(ms: number): string {
  let rest = Math.max(0, Math.round(ms / 1000));
  if (rest === 0) return ms > 0 ? `${Math.round(ms)}ms` : '0s';
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
    if (parts.length === 2) break;
  }
  return parts.join('');
}
