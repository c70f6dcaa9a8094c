// Polling for what a server does asynchronously (a delivery, a log line, a retry), for tests
// that cannot be told when it happens.

/** Resolves with the first value `probe` returns that is not undefined; rejects after timeoutMs. */
export async function waitFor<T>(probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
