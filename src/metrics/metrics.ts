// What Postern counts for Prometheus (served on [listen] metrics by src/server/metrics-service.ts).
// One registry per process, filled where each thing happens: a module imports the metric it
// moves and nothing else. The names follow Prometheus' conventions (postern_ prefix, _total for
// counters, base units: seconds and bytes); labels take a few fixed values each, never an address
// or an account, so the number of series stays small whatever clients do.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();

// Process figures (RSS, open file descriptors, event-loop lag, GC): what a soak is judged on.
collectDefaultMetrics({ register: registry, prefix: 'postern_' });
// prom-client names these gauges with a "_total" suffix, which Prometheus reserves for counters
// (promtool check metrics rejects them); the process' handle counts are not worth a bad name.
for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
  registry.removeSingleMetric(`postern_${name}`);
}

export const connectionsOpened = new Counter({
  name: 'postern_connections_total',
  help: 'Connections accepted, by listener',
  labelNames: ['listener'] as const,
  registers: [registry],
});

export const sessionsRefused = new Counter({
  name: 'postern_sessions_refused_total',
  help: 'Connections refused before a session began, by listener and reason (per-ip, total, dnsbl, pregreet, rate)',
  labelNames: ['listener', 'reason'] as const,
  registers: [registry],
});

/**
 * A counter moved several times per message (every read, every reply): counted here in a Map, by
 * a key its caller makes of the label values, and handed to prom-client only when it is scraped.
 * prom-client's inc() sorts, validates and hashes the labels at every call (0.25 µs in a loop, ten
 * times a message); a Map update by its key takes 0.1 µs.
 */
class TalliedCounter<L extends string> {
  private readonly totals = new Map<string, { readonly labels: Record<L, string>; value: number }>();

  constructor(config: { readonly name: string; readonly help: string; readonly labelNames: readonly L[] }) {
    const totals = this.totals;
    new Counter({
      ...config,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, value } of totals.values()) this.inc(labels, value);
      },
    });
  }

  /** `key` names the label values exactly; `labels` makes them, once per key. */
  add(key: string, labels: () => Record<L, string>, by = 1): void {
    const total = this.totals.get(key);
    if (total) total.value += by;
    else this.totals.set(key, { labels: labels(), value: by });
  }
}

const transactions = new TalliedCounter({
  name: 'postern_transactions_total',
  help: 'SMTP message transactions that reached the end of their data, by listener and result (accepted, rejected)',
  labelNames: ['listener', 'result'] as const,
});

const replies = new TalliedCounter({
  name: 'postern_smtp_replies_total',
  help: 'SMTP replies sent, by listener, code class (2xx..5xx) and enhanced status code',
  labelNames: ['listener', 'class', 'enhanced'] as const,
});

const bytesReceived = new TalliedCounter({
  name: 'postern_received_bytes_total',
  help: 'Octets received from SMTP clients, by listener',
  labelNames: ['listener'] as const,
});

/** A message transaction reached the end of its data, and was accepted or refused. */
export function countTransaction(listener: string, accepted: boolean): void {
  const result = accepted ? 'accepted' : 'rejected';
  transactions.add(`${listener} ${result}`, () => ({ listener, result }));
}

/** Octets read from an SMTP client. */
export function countBytesReceived(listener: string, bytes: number): void {
  bytesReceived.add(listener, () => ({ listener }), bytes);
}

export const authAttempts = new Counter({
  name: 'postern_auth_attempts_total',
  help: 'Logins (SMTP AUTH, POP3 USER/PASS and AUTH) whose credentials were tested, by mechanism and result (success, failure)',
  labelNames: ['mechanism', 'result'] as const,
  registers: [registry],
});

export const deliveryAttempts = new Counter({
  name: 'postern_delivery_attempts_total',
  help: 'Delivery attempts per recipient, by destination (local, remote) and the recipient\'s status after it (delivered, deferred, failed)',
  labelNames: ['destination', 'status'] as const,
  registers: [registry],
});

export const deliveryLatency = new Histogram({
  name: 'postern_delivery_latency_seconds',
  help: 'Time from the 250 after DATA to a recipient\'s successful delivery, by destination',
  labelNames: ['destination'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400],
  registers: [registry],
});

export const spoolBatchSize = new Histogram({
  name: 'postern_spool_batch_records',
  help: 'Records made durable by one write to the spool (group commit)',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
  registers: [registry],
});

export const spoolSyncLatency = new Histogram({
  name: 'postern_spool_fdatasync_seconds',
  help: 'How long each durable write to the spool took (O_DSYNC: the write and its fdatasync in one call)',
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  registers: [registry],
});

export const dnsLookups = new Counter({
  name: 'postern_dns_lookups_total',
  help: 'DNS questions asked of the resolvers (cache misses), by record type and result (ok, nxdomain, nodata, tempfail)',
  labelNames: ['type', 'result'] as const,
  registers: [registry],
});

export const tlsHandshakeFailures = new Counter({
  name: 'postern_tls_handshake_failures_total',
  help: 'TLS handshakes that failed (STARTTLS, STLS or implicit TLS), by listener',
  labelNames: ['listener'] as const,
  registers: [registry],
});

/** Messages in the queue by state; its value is asked of the queue when Prometheus scrapes. */
export type QueueDepth = Readonly<Record<'active' | 'queued' | 'deferred' | 'hold', number>>;

let queueDepthSource: (() => QueueDepth) | undefined;

/** The running queue says how deep it is. */
export function setQueueDepthSource(source: () => QueueDepth): void {
  queueDepthSource = source;
}

/** The queue stopped: no depth to report, unless another server's queue took its place. */
export function clearQueueDepthSource(source: () => QueueDepth): void {
  if (queueDepthSource === source) queueDepthSource = undefined;
}

new Gauge({
  name: 'postern_queue_messages',
  help: 'Messages in the queue, by state: active (being delivered), queued (due), deferred (waiting to retry), hold',
  labelNames: ['state'] as const,
  registers: [registry],
  collect() {
    this.reset();
    const depth = queueDepthSource?.();
    if (!depth) return;
    for (const [state, count] of Object.entries(depth)) this.set({ state }, count);
  },
});

/** "250", "4.7.1" -> the labels of a reply: its class ("2xx") and enhanced code ("" when it has none). */
export function countReply(listener: string, code: number, enhanced: string | undefined): void {
  const cls = `${Math.floor(code / 100)}xx`;
  const enh = enhanced ?? '';
  replies.add(`${listener} ${cls} ${enh}`, () => ({ listener, class: cls, enhanced: enh }));
}
