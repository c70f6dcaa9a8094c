// Several processes, with privilege separation ([workers] > 1). How it works:
//
//   primary (root, when started as root)      binds every listener, reads the certificate keys
//     |                                       (on SIGHUP and renewal too: a root-only key is
//     |                                       re-read), accepts each connection, applies the
//     |                                       connection rate and the per-IP and total caps, and
//     |                                       hands the socket to the least-loaded session worker
//     +-- queue owner (service account)       the store's queue, the spool with its group commit,
//     |                                       every delivery, and the per-account counts
//     +-- session workers 0..N-1 (service account)
//                                             run the sessions; an accepted message goes straight
//                                             to the queue owner over the queue channel, a Unix
//                                             socket in a 0700 directory of data_dir (see
//                                             queue-channel.ts), and the 250 waits for its
//                                             answer, which comes once the spool's write is durable
//
// The children are forked with the account's uid and gid (libuv clears the supplementary groups),
// so no child ever runs as root, and no byte from the network is read by a privileged process:
// the primary reads none, it only passes the socket on, and no message body passes through it.
// A child that dies is started again; its connections' slots are released, and calls waiting on
// a dead queue owner fail as 451 4.3.0 when the channel closes (the client keeps the message and
// retries), as do calls made before the next queue owner listens: nothing accepted is lost, the
// spool is recovered by the next queue owner, and the session workers connect to it again. All
// POP3 connections go to session worker 0, whose memory holds the maildrop locks (RFC 1939 8: one
// session per maildrop). Each session worker tells the others, through the primary, of every AUTH
// failure and success and every message the client rates count, so that each worker's AUTH
// throttle and [limits] client_message_rate count the server's. The primary counts them too, in
// the same bounded tables, and hands them to each session worker as it becomes ready, before its
// first connection: a worker started again keeps every lockout and rate in force, so a crash a
// client provokes resets nothing for it (shared-counts.ts).
// The primary sums every process's metrics for GET /metrics.

import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { LogFormat } from '../log/logger.js';
import { registry } from '../metrics/metrics.js';
import { AuthThrottle, authThrottleOptions } from '../policy/auth-throttle.js';
import { ClientRateLimits, clientRateRules } from '../policy/client-rate.js';
import type { ConnectionLimiter } from '../policy/connection-limiter.js';
import { ServerCertificates } from '../tls/server-certificates.js';
import type { ServiceAccount } from '../util/privileges.js';
import { firstLine, StartupError } from '../util/startup-error.js';
import { isPop3, Listeners, type BoundListener, type ServiceKind } from './listeners.js';
import { admit, type Admission } from './reception.js';
import { configForReload, newLimiter, prepareAccount, reloadedLimiter } from './server.js';
import { SharedCounts } from './shared-counts.js';
import type { FromWorker, ToWorker, WorkerRole } from './worker-protocol.js';

/** One process's figures: its registry's getMetricsAsJSON(). */
type Figures = MetricObjectWithValues<MetricValue<string>>[];

const WORKER_SCRIPT = fileURLToPath(new URL('./worker-process.js', import.meta.url));

/** [workers]: 0 is one session worker per core. */
export function workerCount(config: Config): number {
  return config.workers === 0 ? availableParallelism() : config.workers;
}

/** A child's restart delay doubles after each failure, up to this; a start that works resets it. */
const MAX_RESTART_DELAY_MS = 10_000;
/** How long a scrape waits for each child's figures. */
const COLLECT_TIMEOUT_MS = 5_000;

export interface PrimaryDeps {
  readonly logger: Logger;
  readonly configPath?: string;
  readonly logFormat: LogFormat;
}

interface Child {
  readonly role: WorkerRole;
  process: ChildProcess | undefined;
  ready: boolean;
  restartDelayMs: number;
  /** The admitted connections it serves, by id, with their release. */
  readonly connections: Map<number, () => void>;
}

export class Primary {
  private readonly queueOwner: Child;
  private readonly sessions: Child[];
  private limiter: ConnectionLimiter;
  private readonly rates: ClientRateLimits;
  /** The session workers' AUTH and message counts, relayed: what a worker started again needs. */
  private readonly counts: SharedCounts;
  /** The server-wide AUTH counts (inside counts), under the reloaded [auth.throttle]. */
  private readonly throttle: AuthThrottle;
  private nextConnection = 1;
  private nextCollect = 1;
  private roundRobin = 0;
  private readonly collecting = new Map<number, (metrics: Figures | undefined) => void>();
  /** Connections that arrived while no suitable worker was ready. */
  private readonly waiting: { socket: net.Socket; kind: ServiceKind; release: () => void }[] = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    private config: Config,
    private readonly deps: PrimaryDeps,
    private readonly account: ServiceAccount | undefined,
    private readonly listenerSet: Listeners,
    private readonly certificates: ServerCertificates,
    count: number,
  ) {
    this.limiter = newLimiter(config);
    this.rates = new ClientRateLimits(clientRateRules(config), { logger: deps.logger });
    // No logger: the worker that saw a failure has logged it.
    this.throttle = new AuthThrottle(authThrottleOptions(config.auth.throttle));
    this.counts = new SharedCounts(this.throttle, this.rates);
    const child = (role: WorkerRole): Child => ({ role, process: undefined, ready: false, restartDelayMs: 100, connections: new Map() });
    this.queueOwner = child({ kind: 'queue' });
    this.sessions = Array.from({ length: count }, (_, index) => child({ kind: 'sessions', index }));
  }

  /**
   * Binds, reads the certificates, starts the queue owner (which opens the store and recovers
   * the spool) and the session workers; resolves once all of them are ready.
   */
  static async start(config: Config, deps: PrimaryDeps): Promise<Primary> {
    const { logger } = deps;
    const account = prepareAccount(config, logger);
    let primary: Primary | undefined;
    // Read as root, and again as root on every reload: that is why this process keeps root.
    const certificates = await ServerCertificates.load(config, logger, {
      ...(account ? { owner: account } : {}),
      onChange: () => primary?.broadcastReload(),
    });
    let listeners: Listeners | undefined;
    try {
      listeners = await Listeners.bind(config.listen, logger);
      primary = new Primary(config, deps, account, listeners, certificates, workerCount(config));
      // Forked together, so they load their code at the same time; the session workers open the
      // store only once the queue owner has (it creates and migrates it, and the SRS secret).
      const owner = primary.startChild(primary.queueOwner);
      const sessions = primary.sessions.map((c) => primary?.startChild(c, owner));
      for (const p of sessions) p?.catch(() => undefined);
      await owner;
      await Promise.all(sessions);
    } catch (err) {
      if (primary) {
        // Not started again as they exit: the server is not starting after all.
        primary.stopping = Promise.resolve();
        await primary.stopChildren();
      }
      listeners?.close();
      certificates.close();
      throw err;
    }
    const running = primary;
    listeners.accept((socket, kind) => running.onConnection(socket, kind));
    logger.info({ listeners: listeners.bound, workers: running.sessions.length }, 'listening');
    return running;
  }

  get listeners(): readonly BoundListener[] {
    return this.listenerSet.bound;
  }

  async reload(): Promise<void> {
    const { logger, configPath } = this.deps;
    const next = configForReload(this.config, configPath, logger);
    if (next === undefined) return;
    await this.certificates.reload(next);
    logger.level = next.log.level;
    this.limiter = reloadedLimiter(this.limiter, this.config, next);
    this.rates.update(clientRateRules(next));
    this.throttle.update(authThrottleOptions(next.auth.throttle));
    this.config = next;
    this.broadcastReload();
    logger.info({ config: configPath ?? null }, 'reloaded');
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const { logger } = this.deps;
    this.listenerSet.close();
    this.certificates.close();
    for (const w of this.waiting.splice(0)) {
      w.socket.destroy();
      w.release();
    }
    logger.info('stopping');
    await this.stopChildren();
    logger.info('stopped');
  }

  /** Session workers first (they end their sessions), then the queue owner (it flushes the queue). */
  private async stopChildren(): Promise<void> {
    await Promise.all(this.sessions.map((c) => stopChild(c)));
    await stopChild(this.queueOwner);
  }

  private broadcastReload(): void {
    const message: ToWorker = { type: 'reload', config: this.config, certificates: this.certificates.snapshot() };
    for (const c of [this.queueOwner, ...this.sessions]) if (c.ready) c.process?.send(message);
  }

  private onConnection(socket: net.Socket, kind: ServiceKind): void {
    const admission: Admission | undefined = this.stopping ? undefined : { hostname: this.config.hostname, limiter: this.limiter, rates: this.rates, logger: this.deps.logger };
    const admitted = admit(socket, kind, admission);
    if (admitted === undefined) return;
    const { limiter, ip } = admitted;
    this.handOn(socket, kind, () => limiter.release(ip));
  }

  private handOn(socket: net.Socket, kind: ServiceKind, release: () => void): void {
    const worker = this.choose(kind);
    if (worker?.process === undefined) {
      socket.on('error', () => socket.destroy());
      this.waiting.push({ socket, kind, release });
      return;
    }
    const id = this.nextConnection++;
    worker.connections.set(id, release);
    const message: ToWorker = { type: 'connection', id, kind };
    worker.process.send(message, socket, (err) => {
      // keepOpen is off: once sent, our copy of the socket is closed; unsent, it is ours to close.
      if (err === null) return;
      socket.destroy();
      if (worker.connections.delete(id)) release();
    });
  }

  /** POP3 to worker 0 (its maildrop locks); the rest to the ready worker with the fewest connections. */
  private choose(kind: ServiceKind): Child | undefined {
    if (isPop3(kind)) {
      const first = this.sessions[0];
      return first?.ready ? first : undefined;
    }
    let best: Child | undefined;
    const n = this.sessions.length;
    for (let i = 0; i < n; i++) {
      const c = this.sessions[(this.roundRobin + i) % n] as Child;
      if (c.ready && (best === undefined || c.connections.size < best.connections.size)) best = c;
    }
    this.roundRobin = (this.roundRobin + 1) % n;
    return best;
  }

  /** `after`: hold back its 'start' until this resolves. */
  private startChild(child: Child, after: Promise<void> = Promise.resolve()): Promise<void> {
    const { account } = this;
    const proc = fork(WORKER_SCRIPT, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      ...(account ? { uid: account.uid, gid: account.gid } : {}),
    });
    child.process = proc;
    const start: ToWorker & { logFormat: LogFormat } = {
      type: 'start',
      role: child.role,
      config: this.config,
      certificates: this.certificates.snapshot(),
      listeners: this.listenerSet.bound,
      logFormat: this.deps.logFormat,
    };
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      proc.on('message', (m: FromWorker) => {
        if (m.type === 'loaded') {
          after.then(
            () => proc.send(start),
            () => proc.kill('SIGTERM'),
          );
          return;
        }
        if (m.type === 'ready' && !settled) {
          settled = true;
          // In the same turn as ready = true: no relayed event falls between the records and the
          // relays, and no connection comes before the records (shared-counts.ts).
          if (child.role.kind === 'sessions') proc.send({ type: 'counts', records: this.counts.records() } satisfies ToWorker);
          child.ready = true;
          child.restartDelayMs = 100;
          this.flushWaiting();
          resolve();
          return;
        }
        if (m.type === 'failed' && !settled) {
          settled = true;
          reject(new StartupError(m.message));
          return;
        }
        this.onChildMessage(child, m);
      });
      proc.on('error', (err) => this.deps.logger.error({ err: err.message, worker: nameOf(child) }, 'worker process error'));
      proc.on('exit', (code, signal) => {
        if (!settled) {
          settled = true;
          reject(new StartupError(`a worker process stopped while starting (exit code ${code ?? signal}); see the log`));
        }
        this.onChildExit(child, proc, code, signal);
      });
    });
  }

  private onChildMessage(child: Child, m: FromWorker): void {
    switch (m.type) {
      case 'ended': {
        const release = child.connections.get(m.id);
        child.connections.delete(m.id);
        release?.();
        return;
      }
      case 'collected':
        this.collecting.get(m.id)?.(m.metrics as Figures);
        return;
      case 'auth':
      case 'message-counted':
        this.counts.countElsewhere(m);
        for (const other of this.sessions) if (other !== child && other.ready) other.process?.send(m satisfies ToWorker);
        return;
      case 'scrape':
        void this.collectMetrics().then((text) => child.process?.send({ type: 'metrics', id: m.id, text } satisfies ToWorker));
        return;
      default:
        return;
    }
  }

  private onChildExit(child: Child, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child.process !== proc) return;
    const wasReady = child.ready;
    child.ready = false;
    child.process = undefined;
    for (const release of child.connections.values()) release();
    child.connections.clear();
    if (this.stopping || !wasReady) return;
    const delay = child.restartDelayMs;
    child.restartDelayMs = Math.min(MAX_RESTART_DELAY_MS, delay * 2);
    this.deps.logger.error({ worker: nameOf(child), code, signal, restart_in_ms: delay }, 'worker process stopped; starting it again');
    setTimeout(() => this.restart(child), delay).unref();
  }

  private restart(child: Child): void {
    if (this.stopping) return;
    this.startChild(child).then(
      () => this.deps.logger.info({ worker: nameOf(child), pid: child.process?.pid }, 'worker process started again'),
      (err: unknown) => {
        this.deps.logger.error({ worker: nameOf(child), err: firstLine(err instanceof Error ? err.message : String(err)) }, 'worker process failed to start');
        if (this.stopping || child.process !== undefined) return;
        const delay = child.restartDelayMs;
        child.restartDelayMs = Math.min(MAX_RESTART_DELAY_MS, delay * 2);
        setTimeout(() => this.restart(child), delay).unref();
      },
    );
  }

  private flushWaiting(): void {
    for (const w of this.waiting.splice(0)) {
      if (w.socket.destroyed) w.release();
      else this.handOn(w.socket, w.kind, w.release);
    }
  }

  /** Every process's figures, summed (the primary's own: connections opened and refused). */
  private async collectMetrics(): Promise<string | undefined> {
    try {
      const children = [this.queueOwner, ...this.sessions].filter((c) => c.ready && c.process !== undefined);
      const parts = await Promise.all([registry.getMetricsAsJSON(), ...children.map((c) => this.collectFrom(c))]);
      return await AggregatorRegistry.aggregate(parts.filter((p): p is Figures => p !== undefined)).metrics();
    } catch (err) {
      this.deps.logger.error({ err }, 'cannot collect the workers\' metrics');
      return undefined;
    }
  }

  private collectFrom(child: Child): Promise<Figures | undefined> {
    const id = this.nextCollect++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), COLLECT_TIMEOUT_MS);
      const done = (metrics: Figures | undefined): void => {
        clearTimeout(timer);
        this.collecting.delete(id);
        resolve(metrics);
      };
      this.collecting.set(id, done);
      child.process?.send({ type: 'collect', id } satisfies ToWorker);
    });
  }
}

function nameOf(child: Child): string | number {
  return child.role.kind === 'queue' ? 'queue' : child.role.index;
}

/** Asks the child to stop and waits for it to exit (it bounds its own shutdown). */
function stopChild(child: Child): Promise<void> {
  const proc = child.process;
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    if (proc.connected) proc.send({ type: 'stop' } satisfies ToWorker);
    else proc.kill('SIGTERM');
  });
}
