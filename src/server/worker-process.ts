// A child of the primary process (src/server/workers.ts), started as the service account: it
// never runs as root. It waits for its 'start' message and then plays its role: the queue owner
// (store, spool, queue, deliveries and the per-account counts), or a session worker (sessions on
// the sockets the primary hands it, their accepted messages passed to the queue owner over the
// queue channel, src/server/queue-channel.ts, not through the primary).

import { join } from 'node:path';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { createDnsClient } from '../dns/resolver.js';
import { createLogger, type LogFormat } from '../log/logger.js';
import { SmtpError, type Reply } from '../mail/reply.js';
import { MaildirMaildrops } from '../mailbox/maildrop.js';
import { registry, setQueueDepthSource } from '../metrics/metrics.js';
import type { AccountRates } from '../policy/rate-limits.js';
import type { AuthThrottle } from '../policy/auth-throttle.js';
import type { AuthGuard } from '../smtp/session-host.js';
import { accountLimits, accountRateLimiter } from '../policy/submission-policy.js';
import { SrsCodec } from '../srs/srs.js';
import { loadSrsSecret } from '../srs/srs-secret.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { ServerCertificates } from '../tls/server-certificates.js';
import { firstLine } from '../util/startup-error.js';
import { openQueue, Postern, undoAll, type MessageQueue } from './server.js';
import { QueueChannelClient, QueueChannelServer, queueChannelPath } from './queue-channel.js';
import { SharedCounts } from './shared-counts.js';
import type { FromWorker, QueueCall, QueueResult, ToWorker } from './worker-protocol.js';

type Start = Extract<ToWorker, { type: 'start' }> & { readonly logFormat: LogFormat };

function send(message: FromWorker): void {
  // The channel is gone when the primary is; 'disconnect' then stops this process.
  if (process.connected) process.send?.(message);
}

/** What a role does with the primary's messages after 'start'. */
interface Role {
  onMessage(message: ToWorker, handle: unknown): void;
  stop(): Promise<void>;
}

async function main(): Promise<void> {
  const first = await new Promise<ToWorker>((resolve) => {
    process.once('message', (m: ToWorker) => resolve(m));
    send({ type: 'loaded' });
  });
  // Told to stop before it started (another process of the server failed to start).
  if (first.type !== 'start') process.exit(0);
  const start = first as Start;
  const name = start.role.kind === 'queue' ? 'queue' : start.role.index;
  const logger = createLogger({ level: start.config.log.level, format: start.logFormat }).child({ worker: name });
  // The primary answers these for the whole server (a terminal's ^C reaches every process).
  for (const s of ['SIGINT', 'SIGHUP'] as const) process.on(s, () => {});
  let role: Role;
  try {
    role = start.role.kind === 'queue' ? await queueOwner(start.config, logger) : await sessionWorker(start, logger);
  } catch (err) {
    send({ type: 'failed', message: firstLine(err instanceof Error ? err.message : String(err)) });
    logger.flush();
    process.exit(1);
  }
  let stopping: Promise<void> | undefined;
  const stop = (): void => {
    stopping ??= role.stop().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err: firstLine(err instanceof Error ? err.message : String(err)) }, 'error while stopping');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('message', (m: ToWorker, handle: unknown) => (m.type === 'stop' ? stop() : role.onMessage(m, handle)));
  // The primary is gone (even SIGKILLed): no orphan keeps serving. At once, as if killed with it
  // (the spool is made for that): a new primary's queue owner must not find this one still at
  // work on the spool, and without the primary no session can hand on a message anyway.
  process.on('disconnect', () => {
    if (stopping !== undefined) return;
    logger.warn('the primary process is gone; stopping at once');
    logger.flush();
    process.exit(1);
  });
  process.on('SIGTERM', stop);
  send({ type: 'ready' });
}

async function queueOwner(config: Config, logger: Logger): Promise<Role> {
  const cleanup: (() => Promise<void> | void)[] = [];
  try {
    const { store, queue } = await openQueue(config, logger, cleanup);
    const rates = accountRateLimiter(store, config, logger);
    // Before the store closes (cleanup runs last first): the last counts are saved.
    cleanup.push(() => rates.close());
    setQueueDepthSource(() => queue.depth());
    const answer = async (call: QueueCall): Promise<QueueResult> => {
      switch (call.method) {
        case 'accept':
          return { ok: true, queueId: await queue.accept(call.envelope, call.message, { recordAuthUser: call.recordAuthUser }) };
        case 'checkMessage':
          return { ok: true, reply: await rates.checkMessage(call.account) };
        case 'checkRecipient':
          return { ok: true, reply: await rates.checkRecipient(call.account, call.alreadyInTransaction) };
        case 'record':
          await rates.record(call.account, call.recipients);
          return { ok: true };
      }
    };
    const channel = await QueueChannelServer.listen(
      queueChannelPath(config.data_dir),
      (call) =>
        answer(call).catch((err: unknown): QueueResult => {
          if (!(err instanceof SmtpError)) logger.error({ err }, 'queue owner: call failed');
          return { ok: false, failed: err instanceof SmtpError ? err.reply : undefined };
        }),
      logger,
    );
    // Run first (last first): no call arrives while the queue and the store close.
    cleanup.push(() => channel.close());
    return {
      onMessage(m) {
        if (m.type === 'collect') {
          void registry.getMetricsAsJSON().then((metrics) => send({ type: 'collected', id: m.id, metrics }));
        } else if (m.type === 'reload') {
          logger.level = m.config.log.level;
          rates.update(accountLimits(m.config));
        }
      },
      stop: () => undoAll(cleanup),
    };
  } catch (err) {
    await undoAll(cleanup).catch(() => undefined);
    throw err;
  }
}

/** Calls into the queue owner, over the queue channel (src/server/queue-channel.ts). */
class QueueOwnerClient implements MessageQueue, AccountRates {
  constructor(private readonly channel: QueueChannelClient) {}

  async accept(envelope: Parameters<MessageQueue['accept']>[0], message: Buffer, opts: { recordAuthUser?: boolean }): Promise<string> {
    const result = await this.call({ method: 'accept', envelope, message, recordAuthUser: opts.recordAuthUser === true });
    if (result.queueId === undefined) throw new Error('the queue owner gave no queue id');
    return result.queueId;
  }

  async checkMessage(account: string): Promise<Reply | undefined> {
    return (await this.call({ method: 'checkMessage', account })).reply;
  }

  async checkRecipient(account: string, alreadyInTransaction: number): Promise<Reply | undefined> {
    return (await this.call({ method: 'checkRecipient', account, alreadyInTransaction })).reply;
  }

  async record(account: string, recipients: number): Promise<void> {
    await this.call({ method: 'record', account, recipients });
  }

  /** The counts are the queue owner's to save. */
  async close(): Promise<void> {}

  private async call(call: QueueCall): Promise<Extract<QueueResult, { ok: true }>> {
    const result = await this.channel.call(call);
    if (result.ok) return result;
    // An SmtpError keeps its reply across the process boundary; anything else is 451 4.3.0.
    if (result.failed) throw new SmtpError(result.failed.code, result.failed.enhanced ?? '4.3.0', result.failed.lines.join(' '));
    throw new Error('the queue owner could not take the call');
  }
}

/** This worker's throttle, and every failure and success told to the other workers. */
function sharedAuthGuard(local: AuthThrottle): AuthGuard {
  return {
    beforeAttempt: (ip) => local.beforeAttempt(ip),
    isAccountLocked: (account) => local.isAccountLocked(account),
    failure(ip, account, mechanism) {
      send({ type: 'auth', outcome: 'failure', ip, account });
      return local.failure(ip, account, mechanism);
    },
    success(ip, account) {
      send({ type: 'auth', outcome: 'success', ip, account });
      local.success(ip, account);
    },
  };
}

async function sessionWorker(start: Start, logger: Logger): Promise<Role> {
  const { config } = start;
  const store = openSqliteStore(join(config.data_dir, 'postern.db'));
  try {
    // The queue owner, started first, has created the secret.
    const srs = new SrsCodec(loadSrsSecret(config.data_dir));
    const dns = createDnsClient({ servers: config.relay.dns_servers, maxCacheSeconds: config.relay.dns_cache_seconds });
    const certificates = ServerCertificates.fromSnapshot(config, start.certificates, logger);
    const channel = new QueueChannelClient(queueChannelPath(config.data_dir));
    const owner = new QueueOwnerClient(channel);
    const scrapes = new Map<number, (text: string | undefined) => void>();
    let nextScrape = 1;
    const collectMetrics = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const id = nextScrape++;
        scrapes.set(id, (text) => (text === undefined ? reject(new Error('the primary could not collect the metrics')) : resolve(text)));
        send({ type: 'scrape', id });
      });
    const server = new Postern(config, { logger }, {
      store,
      queue: undefined,
      sink: owner,
      rates: owner,
      collectMetrics,
      onClientMessage: (ip) => send({ type: 'message-counted', ip }),
      authGuard: sharedAuthGuard,
      listeners: { bound: start.listeners, close: () => {} },
      certificates,
      // POP3 connections all go to session worker 0: the maildrop locks are in its memory.
      maildrops: new MaildirMaildrops(join(config.data_dir, 'mail')),
      srs,
      dns,
      close: () => store.close(),
    });
    const counts = new SharedCounts(server.authThrottle, server.clientRates);
    return {
      onMessage(m, handle) {
        switch (m.type) {
          case 'connection': {
            const socket = handle as net.Socket | undefined;
            if (socket === undefined) {
              send({ type: 'ended', id: m.id });
              return;
            }
            server.reception.serve(socket, m.kind, () => send({ type: 'ended', id: m.id }));
            return;
          }
          case 'metrics': {
            const done = scrapes.get(m.id);
            scrapes.delete(m.id);
            done?.(m.text);
            return;
          }
          case 'collect':
            void registry.getMetricsAsJSON().then((metrics) => send({ type: 'collected', id: m.id, metrics }));
            return;
          case 'counts':
            counts.restore(m.records);
            return;
          case 'auth':
          case 'message-counted':
            counts.countElsewhere(m);
            return;
          case 'reload':
            certificates.replace(m.config, m.certificates);
            server.apply(m.config);
            return;
          default:
            return;
        }
      },
      // The sessions end first: a transaction finishing in the grace period still calls.
      stop: () => server.stop().finally(() => channel.close()),
    };
  } catch (err) {
    store.close();
    throw err;
  }
}

void main();
