// Reads Prometheus' text exposition format (what /metrics serves) into samples a test can compare:
// "name{label="value",...} number" lines, comments skipped. Enough for our own output, which
// prom-client writes one sample per line with labels in double quotes.

export interface Samples {
  /** The sample's value, 0 when the series does not exist (a counter not yet moved). */
  value(name: string, labels: Readonly<Record<string, string>>): number;
  /** How much a series grew since `before`. */
  delta(before: Samples, name: string, labels: Readonly<Record<string, string>>): number;
  /** How much all series of a metric grew together since `before`. */
  sumDelta(before: Samples, name: string): number;
  readonly series: ReadonlyMap<string, number>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${parts.join(',')}}`;
}

export function parsePrometheusText(text: string): Samples {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    series.set(seriesKey(m[1]!, labels), Number(m[3]));
  }
  const samples: Samples = {
    series,
    value: (name, labels) => series.get(seriesKey(name, labels)) ?? 0,
    delta: (before, name, labels) => samples.value(name, labels) - before.value(name, labels),
    sumDelta: (before, name) => {
      let sum = 0;
      for (const [key, v] of series) if (key.startsWith(`${name}{`)) sum += v - (before.series.get(key) ?? 0);
      return sum;
    },
  };
  return samples;
}
