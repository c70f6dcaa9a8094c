// The server process: `postern serve`. startServer assembles the parts (store, queue, listeners,
// sessions) in an order that keeps root's privileges for as short as possible; runServer is the
// command around it: config, logger, signals and exit codes.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { chooseLogFormat, createLogger, type LogFormat } from '../log/logger.js';
import { ClientRateLimits, clientRateRules } from '../policy/client-rate.js';
import { ConnectionLimiter } from '../policy/connection-limiter.js';
import { createSessionPolicy } from '../policy/session-policy.js';
import { SenderAuthPolicy } from '../policy/sender-auth-policy.js';
import { GreylistGate } from '../policy/greylist-gate.js';
import { createSubmissionPolicy, type SubmissionPolicy } from '../policy/submission-policy.js';
import { storeCredentials } from '../sasl/credentials.js';
import { createMechanismsFromConfig } from '../sasl/registry.js';
import { deliveryNotices } from '../bounce/delivery-notices.js';
import { QueueManager } from '../queue/queue-manager.js';
import { queueSettings } from '../queue/queue-config.js';
import { createDnsClient, type DnsClient } from '../dns/resolver.js';
import { MtaStsCache } from '../dns/mta-sts.js';
import { createMessageSigner } from '../dkim/signer.js';
import { Maildirs } from '../delivery/local/maildir.js';
import { MaildirMaildrops } from '../mailbox/maildrop.js';
import { MaildirCourier } from '../delivery/local/maildir-courier.js';
import { parseLmtpEndpoint } from '../delivery/local/lmtp-client.js';
import { LmtpCourier } from '../delivery/local/lmtp-courier.js';
import type { Courier } from '../queue/courier.js';
import { RemoteDelivery } from '../delivery/remote/remote-delivery.js';
import type { AuthGuard, MessageSink } from '../smtp/session-host.js';
import type { AuthThrottle } from '../policy/auth-throttle.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import type { Envelope, QueueId } from '../mail/envelope.js';
import type { AccountRates } from '../policy/rate-limits.js';
import { NetworkList } from '../util/network-list.js';
import { dropPrivileges, prepareDataDir, requireProgramReachable, serviceAccount, type ServiceAccount } from '../util/privileges.js';
import { listeningBanner } from './banner.js';
import { ClientScreen } from './client-screen.js';
import { connectionSettingsFor } from './connection-settings.js';
import { formatHostPort, Listeners, SERVICE_KINDS, type BoundListener } from './listeners.js';
import { pop3SettingsFor } from './pop3-settings.js';
import { Reception, type ReceptionSettings } from './reception.js';
import { MetricsService } from './metrics-service.js';
import { clearQueueDepthSource, setQueueDepthSource, type QueueDepth } from '../metrics/metrics.js';
import { describeErrno, firstLine, StartupError } from '../util/startup-error.js';
import { ServerCertificates } from '../tls/server-certificates.js';
import { clientSettings } from '../web/client-settings.js';
import { Site } from '../web/site.js';
import { WebService } from '../web/web-service.js';
import { SrsCodec } from '../srs/srs.js';
import { loadSrsSecret } from '../srs/srs-secret.js';
import { RecentActivity } from '../util/recent-activity.js';

export interface RunningServer {
  readonly listeners: readonly BoundListener[];
  /** Re-reads the config file (SIGHUP): a bad file is logged and the running config kept. */
  reload(): Promise<void>;
  /** Graceful stop (SIGTERM): see Reception.shutdown, then flush the queue and close the store. */
  stop(): Promise<void>;
}

/**
 * `now`: the greylist's clock, for in-process tests that walk it past the delay; `postern serve`
 * passes none (the system clock), and no config key can set it.
 */
export interface ServerDeps {
  readonly logger: Logger;
  readonly configPath?: string;
  readonly now?: () => number;
}

/**
 * The account to run as (undefined unless we are root), with data_dir made ready for it and
 * Postern's own files checked to be readable by it.
 */
export function prepareAccount(config: Config, logger: Logger): ServiceAccount | undefined {
  const account = serviceAccount(config);
  if (account && config.user === '') {
    logger.warn(
      { user: account.user },
      'running as "nobody"; a dedicated user is recommended: useradd --system postern, then set user = "postern"',
    );
  }
  try {
    requireProgramReachable(account);
    prepareDataDir(config.data_dir, account);
  } catch (err) {
    // Its messages already say what is wrong with which path, and what to do.
    throw new StartupError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  return account;
}

export async function startServer(config: Config, deps: ServerDeps): Promise<RunningServer> {
  const { logger } = deps;
  const account = prepareAccount(config, logger);
  // Read while still root: a configured key (e.g. under /etc/letsencrypt) is often root-only.
  const certificates = await ServerCertificates.load(config, logger, account ? { owner: account } : {});

  const cleanup: (() => Promise<void> | void)[] = [() => certificates.close()];
  try {
    const listeners = await Listeners.bind(config.listen, logger);
    cleanup.push(() => listeners.close());
    // Dropped before the store and spool are opened, so every file they create belongs to the
    // service account (a root-owned WAL or spool segment would be unwritable after the drop),
    // and before a single connection is handed on (Listeners holds them until accept()).
    if (account) dropPrivileges(account);

    const queueCleanup: (() => Promise<void> | void)[] = [];
    cleanup.push(() => undoAll(queueCleanup));
    const { store, srs, dns, queue } = await openQueue(config, logger, queueCleanup);
    const maildrops = new MaildirMaildrops(join(config.data_dir, 'mail'));
    const server = new Postern(config, deps, {
      store,
      queue,
      sink: queue,
      listeners,
      certificates,
      maildrops,
      srs,
      dns,
      close: () => undoAll(queueCleanup),
    });
    listeners.accept(server.reception.onConnection);
    logger.info({ listeners: listeners.bound }, 'listening');
    return server;
  } catch (err) {
    await undoAll(cleanup).catch(() => undefined);
    throw err;
  }
}

/** Runs the closers last first; every one runs, and the first failure is thrown after them. */
export async function undoAll(cleanup: (() => Promise<void> | void)[]): Promise<void> {
  let first: unknown;
  for (const undo of cleanup.splice(0).reverse()) {
    try {
      await undo();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** What owns the queue: the store, and the queue with its delivery agents. */
export interface QueueParts {
  readonly store: Store;
  readonly srs: SrsCodec;
  readonly dns: DnsClient;
  readonly queue: QueueManager;
}

/**
 * Opens the store, the spool and the queue with its couriers, pushing their closers on `cleanup`
 * (in order: undone in reverse). Runs as the service account: every file it creates is its own.
 */
export async function openQueue(config: Config, logger: Logger, cleanup: (() => Promise<void> | void)[]): Promise<QueueParts> {
  const store = openSqliteStore(join(config.data_dir, 'postern.db'), { queueWriterThread: true });
  cleanup.push(() => store.close());
  // After the drop, like the store: the secret file belongs to the service account.
  const srs = new SrsCodec(loadSrsSecret(config.data_dir));
  // Outbound relay: resolver, MTA-STS policies, DKIM signer, then the delivery agent.
  const { relay } = config;
  const dns = createDnsClient({ servers: relay.dns_servers, maxCacheSeconds: relay.dns_cache_seconds });
  // `ca` replaces Node's trust store, so the system's roots come along with tls_ca_file's.
  const ca = relay.tls_ca_file === '' ? undefined : [...rootCertificates, readCaFile(relay.tls_ca_file)];
  const mtaSts = relay.mta_sts.enabled
    ? new MtaStsCache({ dns, dataDir: config.data_dir, httpsPort: relay.mta_sts.https_port, ...(ca ? { ca } : {}), logger })
    : undefined;
  const remote = new RemoteDelivery({ config, dns, mtaSts, signer: createMessageSigner(config, logger), logger });
  cleanup.push(() => remote.close());
  // Marked by the queue at every accepted message; Maildir deliveries widen once it is quiet.
  const accepting = new RecentActivity();
  const local = localCourier(config, logger, accepting);
  cleanup.push(() => local.close?.());
  const queue = await QueueManager.open({
    dataDir: config.data_dir,
    hostname: config.hostname,
    store,
    logger,
    local,
    remote,
    srs,
    accepting,
    notices: deliveryNotices({
      hostname: config.hostname,
      store,
      postmaster: config.postmaster,
      recipientDelimiter: config.recipient_delimiter,
      logger,
    }),
    ...queueSettings(config),
  });
  cleanup.push(() => queue.close());
  return { store, srs, dns, queue };
}

/** Where a session's accepted messages go: this process's queue, or the queue owner's. */
export interface MessageQueue {
  accept(envelope: Envelope, message: Buffer, opts: { recordAuthUser?: boolean }): Promise<QueueId>;
}

export interface Parts {
  readonly store: Store;
  /** The queue, when it is in this process (its depth goes to the metrics). */
  readonly queue: QueueManager | undefined;
  /** Where accepted messages go: the queue, or the queue owner process. */
  readonly sink: MessageQueue;
  /** Closes the store and, where it is here, the queue (after the sessions have ended). */
  readonly close: () => Promise<void>;
  /** Per-account counts kept in another process; by default this one keeps them. */
  readonly rates?: AccountRates;
  /** Told of every message the client rates count (a worker process tells the others). */
  readonly onClientMessage?: (ip: string) => void;
  /** The AUTH guard the sessions ask, around this process's throttle; by default the throttle. */
  readonly authGuard?: (throttle: AuthThrottle) => AuthGuard;
  /** The metrics exposition; by default this process's registry. */
  readonly collectMetrics?: () => Promise<string>;
  readonly listeners: { readonly bound: readonly BoundListener[]; close(): void };
  /** Reloaded in place (SIGHUP, or its files changed); connections ask it at each handshake. */
  readonly certificates: ServerCertificates;
  /** One per server: it holds the POP3 locks, one session per mailbox. */
  readonly maildrops: MaildirMaildrops;
  /** Forwarded mail's senders, and the bounces that come back to them. */
  readonly srs: SrsCodec;
  /** [relay] dns_servers, with its answer cache: delivery, the connect-time screen and sender authentication share it. */
  readonly dns: DnsClient;
}

/** How long an https client has for its TLS handshake. */
const WEB_HANDSHAKE_TIMEOUT_MS = 10_000;

export class Postern implements RunningServer {
  readonly reception: Reception;
  /** One per server: node:http's own timers and the keep-alive connections live in it. */
  private readonly web: WebService;
  private readonly metrics: MetricsService;
  private readonly queueDepth = (): QueueDepth => this.parts.queue?.depth() ?? { active: 0, queued: 0, deferred: 0, hold: 0 };
  private stopping: Promise<void> | undefined;
  private config: Config;
  private limiter: ConnectionLimiter;
  /**
   * One per server: AUTH failure counts and per-account message counts must survive a reload,
   * which changes only its limits.
   */
  private readonly submission: SubmissionPolicy;
  /** One per server, like submission: a reload must not hand a flooding client a fresh count. */
  readonly clientRates: ClientRateLimits;
  private readonly authGuard: AuthGuard;

  /** This process's AUTH throttle, under the guard: a worker process's counts come and go through it. */
  get authThrottle(): AuthThrottle {
    return this.submission.authThrottle;
  }

  constructor(
    config: Config,
    private readonly deps: ServerDeps,
    private readonly parts: Parts,
  ) {
    this.config = config;
    this.limiter = newLimiter(config);
    this.submission = createSubmissionPolicy(parts.store, config, deps.logger, parts.rates);
    this.authGuard = parts.authGuard?.(this.submission.authThrottle) ?? this.submission.authThrottle;
    this.clientRates = new ClientRateLimits(clientRateRules(config), { logger: deps.logger, onMessage: parts.onClientMessage });
    this.web = new WebService(this.site(config), deps.logger);
    this.metrics = new MetricsService(deps.logger, parts.collectMetrics);
    if (parts.queue) setQueueDepthSource(this.queueDepth);
    this.reception = new Reception(this.receptionSettings(config));
    this.warnAboutClientHost(config);
  }

  get listeners(): RunningServer['listeners'] {
    return this.parts.listeners.bound;
  }

  async reload(): Promise<void> {
    const { logger, configPath } = this.deps;
    const next = configForReload(this.config, configPath, logger);
    if (next === undefined) return;
    // Never throws: a certificate that fails to load is logged and its previous one kept.
    await this.parts.certificates.reload(next);
    this.apply(next);
    logger.info({ config: configPath ?? null }, 'reloaded');
  }

  /** A new config for everything but the certificates and [listen] (see reload). */
  apply(next: Config): void {
    const { logger } = this.deps;
    logger.level = next.log.level;
    this.limiter = reloadedLimiter(this.limiter, this.config, next);
    this.clientRates.update(clientRateRules(next));
    this.submission.update(next);
    this.config = next;
    this.web.update(this.site(next));
    this.reception.update(this.receptionSettings(next));
    this.warnAboutClientHost(next);
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const { logger } = this.deps;
    const { listeners, certificates } = this.parts;
    listeners.close();
    certificates.close();
    logger.info({ connections: this.reception.openConnections }, 'stopping');
    await this.reception.shutdown(this.config.limits.shutdown_grace * 1000);
    this.web.close();
    // Saves the last per-account counts; the store must still be open.
    await this.submission.rateLimiter.close();
    await this.parts.close();
    clearQueueDepthSource(this.queueDepth);
    logger.info('stopped');
  }

  private receptionSettings(config: Config): ReceptionSettings {
    const { logger } = this.deps;
    const policy = createSessionPolicy(this.parts.store, {
      recipientDelimiter: config.recipient_delimiter,
      postmaster: config.postmaster,
      hostname: config.hostname,
      logger,
      submission: this.submission,
      srs: this.parts.srs,
      greylist: GreylistGate.fromConfig(config, { store: this.parts.store, dns: this.parts.dns, logger, now: this.deps.now }),
      clientRates: this.clientRates,
    });
    const { sink: queue, store } = this.parts;
    const recordAuthUser = config.submission.received_auth;
    const sink: MessageSink = { accept: (envelope, message) => queue.accept(envelope, message, { recordAuthUser }) };
    const { authGuard } = this;
    const credentials = storeCredentials(store);
    const mechanisms = createMechanismsFromConfig(config, credentials);
    return {
      hostname: config.hostname,
      limiter: this.limiter,
      rates: this.clientRates,
      perListener: connectionSettingsFor(config, {
        policy,
        authGuard,
        mechanisms,
        sink,
        certificates: this.parts.certificates,
        logger,
        screen: ClientScreen.fromConfig(config, this.parts.dns),
        authenticator: SenderAuthPolicy.fromConfig(config, this.parts.dns),
      }),
      pop3: pop3SettingsFor(config, {
        maildrops: this.parts.maildrops,
        credentials,
        authGuard,
        mechanisms,
        certificates: this.parts.certificates,
        logger,
      }),
      metrics: this.metrics,
      web: { service: this.web, certificates: this.parts.certificates, handshakeTimeoutMs: WEB_HANDSHAKE_TIMEOUT_MS, logger },
      logger,
    };
  }

  /**
   * Mail programs are told the ports the listeners got (a configured port 0 is the kernel's
   * choice), and the addresses bound at start: [listen] changes wait for a restart.
   */
  private site(config: Config): Site {
    const listen = { ...config.listen };
    for (const kind of SERVICE_KINDS) listen[kind] = this.listeners.filter((l) => l.kind === kind).map((l) => formatHostPort(l.address, l.port));
    return new Site({ config: { ...config, listen }, directory: this.parts.store, certificates: this.parts.certificates });
  }

  /** Says so when mail programs cannot be told [clients] host (see src/web/client-settings.ts). */
  private warnAboutClientHost(config: Config): void {
    if (config.listen.http.length === 0 && config.listen.https.length === 0) return;
    const settings = clientSettings(config, this.parts.certificates);
    const problem = settings.ok ? settings.warning : settings.problem;
    if (problem !== undefined) this.deps.logger.warn(problem);
  }
}

/** [delivery] lmtp: an LMTP server files local mail (RFC 2033); "" = Postern writes the Maildirs. */
function localCourier(config: Config, logger: Logger, accepting: RecentActivity): Courier {
  const { lmtp } = config.delivery;
  if (lmtp === '') return new MaildirCourier(new Maildirs(join(config.data_dir, 'mail'), config.hostname, { accepting }), config.hostname, logger);
  let endpoint;
  try {
    endpoint = parseLmtpEndpoint(lmtp);
  } catch (err) {
    throw new StartupError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  return new LmtpCourier({ endpoint, lhloName: config.hostname, recipientDelimiter: config.recipient_delimiter, logger });
}

function readCaFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new StartupError(`cannot read [relay] tls_ca_file "${path}": ${describeErrno(err)}`, { cause: err });
  }
}

/**
 * The limiter after a reload: a new one when its limits changed. Connections opened before stay
 * counted (and released) in the old limiter, so the new one undercounts until they end: a
 * reload loosens the limits for a while, never tightens them.
 */
export function reloadedLimiter(current: ConnectionLimiter, config: Config, next: Config): ConnectionLimiter {
  const { limits } = config;
  const same =
    limits.max_connections_per_ip === next.limits.max_connections_per_ip &&
    limits.max_connections === next.limits.max_connections &&
    JSON.stringify(limits.trusted_networks) === JSON.stringify(next.limits.trusted_networks);
  return same ? current : newLimiter(next);
}

export function newLimiter(config: Config): ConnectionLimiter {
  const { limits } = config;
  return new ConnectionLimiter(limits.max_connections_per_ip, limits.max_connections, new NetworkList(limits.trusted_networks));
}

/**
 * `postern serve`: resolves with the exit code once the server has stopped. Every startup failure
 * is one line on stderr and exit code 1. SIGHUP reloads; SIGTERM/SIGINT stop gracefully, and a
 * second one kills at once (the handlers are removed, so the default action applies).
 */
export async function runServer(opts: { configPath?: string; logFormat?: LogFormat }): Promise<number> {
  let loaded: { config: Config; path: string | undefined };
  try {
    loaded = loadConfig(opts.configPath);
  } catch (err) {
    process.stderr.write(`postern: ${oneLine(err)}\n`);
    return 1;
  }
  const { config } = loaded;
  const format = opts.logFormat ?? chooseLogFormat(config.log.format, process.stdout.isTTY === true);
  const logger = createLogger({ level: config.log.level, format });

  // The handlers go in before startServer: it logs "listening" before it returns, and a SIGTERM
  // in that gap must still stop the server cleanly rather than kill it.
  const signals = new SignalLatch();
  let server: RunningServer;
  try {
    const paths = loaded.path !== undefined ? { configPath: loaded.path } : {};
    // Loaded on demand, like the server itself: the worker processes need none of it.
    const { Primary, workerCount } = await import('./workers.js');
    server = workerCount(config) > 1 ? await Primary.start(config, { logger, logFormat: format, ...paths }) : await startServer(config, { logger, ...paths });
  } catch (err) {
    signals.dispose();
    if (!(err instanceof StartupError)) logger.debug({ err }, 'startup failed');
    logger.flush();
    process.stderr.write(`postern: ${oneLine(err)}\n`);
    return 1;
  }
  process.stderr.write(
    listeningBanner(server.listeners, {
      script: process.argv[1] ?? 'bin/postern.js',
      cwd: process.env.INIT_CWD ?? process.cwd(),
      configPath: opts.configPath,
    }),
  );

  const code = await new Promise<number>((resolve) => {
    signals.attach({
      hangup: () => {
        logger.info('SIGHUP: reloading the config');
        server.reload().catch((err: unknown) => logger.error({ err: oneLine(err) }, 'reload failed'));
      },
      stop: (signal) => {
        logger.info({ signal }, 'stopping on signal');
        server.stop().then(
          () => resolve(0),
          (err: unknown) => {
            logger.error({ err: oneLine(err) }, 'error while stopping');
            resolve(1);
          },
        );
      },
    });
  });
  logger.flush();
  return code;
}

/** ConfigError, StartupError and the privilege errors all carry one line; anything else is cut to one. */
/**
 * SIGHUP: the config file read again, or the running config when there is no file; undefined
 * (logged) when the file is bad, so the server keeps running as it was. What only a restart can
 * change ([listen], data_dir, workers) is said so, and stays as it is.
 */
export function configForReload(current: Config, configPath: string | undefined, logger: Logger): Config | undefined {
  let next = current;
  if (configPath !== undefined) {
    try {
      next = loadConfig(configPath).config;
    } catch (err) {
      logger.error({ err: oneLine(err) }, 'reload failed; still running with the previous config');
      return undefined;
    }
  }
  const changed = READ_AT_START.filter((key) => JSON.stringify(next[key]) !== JSON.stringify(current[key]));
  if (changed.length > 0) logger.warn({ keys: changed }, `${changed.join(', ')}: changed, but read at start only; restart to apply`);
  return next;
}

/** What a reload cannot change: the sockets, the processes and the queue with its couriers. */
const READ_AT_START = ['listen', 'data_dir', 'user', 'workers', 'queue', 'relay', 'dkim', 'delivery', 'dovecot'] as const satisfies readonly (keyof Config)[];

function oneLine(err: unknown): string {
  return firstLine(err instanceof Error ? err.message : String(err));
}

/**
 * Catches SIGHUP/SIGTERM/SIGINT from the moment it is created; signals that arrive before the
 * server is ready are replayed when `attach` is called. After the first stop signal the handlers
 * are removed, so a second SIGTERM or SIGINT kills the process at once (the default action).
 */
class SignalLatch {
  private pending: NodeJS.Signals[] = [];
  private handlers: { hangup(): void; stop(signal: NodeJS.Signals): void } | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.handlers === undefined) {
      this.pending.push(signal);
      if (signal !== 'SIGHUP') this.dispose();
      return;
    }
    if (signal === 'SIGHUP') {
      this.handlers.hangup();
      return;
    }
    this.dispose();
    this.handlers.stop(signal);
  };

  constructor() {
    for (const s of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) process.on(s, this.onSignal);
  }

  attach(handlers: { hangup(): void; stop(signal: NodeJS.Signals): void }): void {
    this.handlers = handlers;
    const stop = this.pending.find((s) => s !== 'SIGHUP');
    this.pending = [];
    // A reload before start-up is moot: the server has just read the config.
    if (stop !== undefined) handlers.stop(stop);
  }

  dispose(): void {
    for (const s of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) process.off(s, this.onSignal);
  }
}
