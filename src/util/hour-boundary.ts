// For tests of hourly and daily counters that run on the real clock: a test that straddles a
// whole hour (UTC; every day boundary is one too) would see its counts move to the previous
// window. Waiting out the last few seconds of an hour keeps such a test inside one window.

const HOUR_MS = 3_600_000;

export async function awayFromHourBoundary(marginMs = 10_000): Promise<void> {
  const left = HOUR_MS - (Date.now() % HOUR_MS);
  if (left < marginMs) await new Promise((resolve) => setTimeout(resolve, left + 50));
}
