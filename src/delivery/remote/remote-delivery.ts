// Delivery of one message to the recipients at one other domain: find the route (route.ts), apply
// the domain's MTA-STS policy (RFC 8461), sign (DKIM), then try the next hops in order until one
// gives every recipient a final word. The queue gets one outcome per recipient and decides on
// retries and bounces; nothing here throws at it.

import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { MessageSigner } from '../../dkim/signer.js';
import { mxMatchesPolicy, type MtaStsPolicy } from '../../dns/mta-sts-policy.js';
import type { DnsClient } from '../../dns/resolver.js';
import { splitAddress } from '../../mail/address.js';
import { durationMs } from '../../util/duration.js';
import { replyLine, type Reply } from '../../mail/reply.js';
import type { Courier, CourierJob, CourierRecipient, DeliveryOutcome } from '../../queue/courier.js';
import { stoppedError, type ClientTimeouts, type RecipientResult } from '../client/client-session.js';
import { ConnectionPool } from '../client/connection-pool.js';
import { recipientOutcome } from '../client/recipient-outcome.js';
import { errorText, SmtpClientError } from '../client/reply-stream.js';
import { Router, type NextHost, type Via } from './route.js';
import { SmtpClientConnection, type TlsMode } from './smtp-client.js';

/** Where MTA-STS policies come from: src/dns/mta-sts.ts MtaStsCache. */
export interface MtaStsPolicySource {
  policyFor(domain: string): Promise<MtaStsPolicy | undefined>;
  /** Ends fetches in flight (the server is stopping). */
  abort?(): void;
}

export interface RemoteDeliveryOptions {
  readonly config: Config;
  readonly dns: DnsClient;
  readonly mtaSts?: MtaStsPolicySource | undefined;
  readonly signer?: MessageSigner | undefined;
  readonly logger: Logger;
}

/** RFC 5321 5.1 lets a client give up after a few addresses; Postfix tries 5 (smtp_mx_address_limit). */
const MAX_ADDRESSES = 10;

/** How the hosts of a route are to be reached. */
interface Plan {
  readonly hosts: readonly NextHost[];
  readonly tls: TlsMode;
  readonly via: Via;
  /** Pool key: the destination, and the TLS demands a reused session must have met. */
  readonly poolKey: string;
}

/** Where one recipient stands during an attempt. */
type Pending = { readonly index: number; readonly recipient: CourierRecipient };

/** A host that gave no final word: its failure, for the outcome if no other host does better. */
interface HostFailure {
  readonly reason: string;
  readonly reply: Reply | undefined;
  readonly remoteHost?: string;
}

export class RemoteDelivery implements Courier {
  private readonly router: Router;
  private readonly pool: ConnectionPool<SmtpClientConnection>;
  private readonly timeouts: ClientTimeouts;
  private readonly heloName: string;
  private readonly credentials: { username: string; password: string } | undefined;
  /** Trust anchors for verified TLS: the system's plus tls_ca_file; undefined = the system's. */
  private readonly ca: string[] | undefined;
  /** abort(): every session listens to it (connectSocket), so none outlives the stop. */
  private readonly stopping = new AbortController();

  constructor(private readonly opts: RemoteDeliveryOptions) {
    // One listener per open session; up to [relay] max_connections of them is no leak.
    setMaxListeners(0, this.stopping.signal);
    const relay = opts.config.relay;
    this.router = new Router(relay, opts.dns, opts.config.hostname);
    this.pool = new ConnectionPool(
      {
        perDestination: relay.max_connections_per_destination,
        total: relay.max_connections,
        idleMs: durationMs(relay.connection_cache_time),
      },
      opts.logger,
    );
    this.timeouts = {
      connectMs: durationMs(relay.connect_timeout),
      greetingMs: durationMs(relay.greeting_timeout),
      mailMs: durationMs(relay.mail_timeout),
      rcptMs: durationMs(relay.rcpt_timeout),
      dataInitMs: durationMs(relay.data_init_timeout),
      dataBlockMs: durationMs(relay.data_block_timeout),
      dataFinalMs: durationMs(relay.data_final_timeout),
    };
    this.heloName = relay.helo_name || opts.config.hostname;
    this.credentials = smarthostCredentials(relay);
    this.ca = relay.tls_ca_file === '' ? undefined : [...rootCertificates, readFileSync(relay.tls_ca_file, 'utf8')];
  }

  /** One outcome per recipient, in job order. Never throws. */
  async deliver(job: CourierJob): Promise<DeliveryOutcome[]> {
    try {
      return await this.attempt(job);
    } catch (err) {
      this.opts.logger.error({ err, queue_id: job.queueId, domain: job.domain }, 'delivery: internal error');
      return job.recipients.map(() => ({ kind: 'deferred', reply: undefined, reason: 'internal error in the delivery agent, will retry' }));
    }
  }

  /** Cuts the sessions and DNS lookups in flight: their recipients come back deferred, and stay queued. */
  abort(): void {
    this.stopping.abort();
    this.opts.mtaSts?.abort?.();
    // A resolver that never answers would hold a route for its timeout and tries (seconds each).
    this.opts.dns.cancel?.();
  }

  /** QUITs idle sessions; deliveries still waiting for a slot are deferred. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  private async attempt(job: CourierJob): Promise<DeliveryOutcome[]> {
    const route = await this.router.route(job.domain);
    switch (route.kind) {
      case 'failed':
        return job.recipients.map(() => ({ kind: 'failed', reply: undefined, reason: route.reason, status: route.status }));
      case 'deferred': {
        const reason = this.stopping.signal.aborted ? `${route.reason} (cut: Postern is shutting down)` : route.reason;
        return job.recipients.map(() => ({ kind: 'deferred', reply: undefined, reason }));
      }
      case 'hosts':
        break;
    }
    const plan = await this.plan(job, route.via, route.destination, route.hosts);
    if (typeof plan === 'string') return job.recipients.map(() => ({ kind: 'deferred', reply: undefined, reason: plan }));

    let message: Buffer;
    try {
      message = await this.sign(job);
    } catch (err) {
      this.opts.logger.error({ err, queue_id: job.queueId }, 'delivery: DKIM signing failed');
      return job.recipients.map(() => ({ kind: 'deferred', reply: undefined, reason: `DKIM signing failed: ${errorText(err)}` }));
    }

    const outcomes: (DeliveryOutcome | undefined)[] = job.recipients.map(() => undefined);
    const pending = (): Pending[] => job.recipients.flatMap((recipient, index) => (outcomes[index] ? [] : [{ index, recipient }]));
    const lease = await this.pool.acquire(plan.poolKey);
    let current: SmtpClientConnection | undefined;
    let failure: HostFailure = { reason: `no mail server of ${job.domain} could be reached`, reply: undefined };
    try {
      for await (const next of this.sessions(plan, lease.idle)) {
        if ('reason' in next) {
          failure = next;
          continue;
        }
        current = next;
        const result = await this.transact(current, job, message, pending(), outcomes);
        if (result === 'done') break;
        failure = result;
        current.close();
        current = undefined;
      }
    } catch (err) {
      current?.close();
      current = undefined;
      throw err;
    } finally {
      lease.release(current);
    }
    for (const { index } of pending()) {
      outcomes[index] = { kind: 'deferred', reply: failure.reply, reason: failure.reason, ...(failure.remoteHost ? { remoteHost: failure.remoteHost } : {}) };
    }
    return outcomes as DeliveryOutcome[];
  }

  /**
   * Sessions to try in order: the idle one from the pool, then one per address of each host.
   * A host that cannot be reached yields its failure instead.
   */
  private async *sessions(plan: Plan, idle: SmtpClientConnection | undefined): AsyncGenerator<SmtpClientConnection | HostFailure> {
    if (idle?.usable) yield idle;
    else idle?.close();
    const candidates = plan.hosts.flatMap((host) => host.addresses.map((address) => ({ host, address }))).slice(0, MAX_ADDRESSES);
    for (const { host, address } of candidates) {
      // Cut at shutdown: the other hosts would only fail the same way.
      if (this.stopping.signal.aborted) {
        yield { reason: stoppedError(host.name).message, reply: undefined, remoteHost: host.name };
        return;
      }
      let session: SmtpClientConnection | undefined;
      try {
        session = await SmtpClientConnection.open({
          host: host.name,
          address,
          port: host.port,
          heloName: this.heloName,
          tls: plan.tls,
          ca: this.ca,
          timeouts: this.timeouts,
          logger: this.opts.logger,
          signal: this.stopping.signal,
        });
        if (plan.via === 'smarthost' && this.credentials) await session.authenticate(this.credentials.username, this.credentials.password);
      } catch (err) {
        session?.close();
        if (!(err instanceof SmtpClientError)) throw err;
        this.opts.logger.info({ host: host.name, address, port: host.port, reason: err.message }, 'delivery: host failed, trying the next');
        yield { reason: err.message, reply: err.reply, remoteHost: host.name };
        continue;
      }
      yield session;
    }
  }

  /**
   * One transaction on `session` for the pending recipients. Fills in their outcomes and returns
   * 'done', or returns the failure when this host gave no final word (the next host may).
   */
  private async transact(
    session: SmtpClientConnection,
    job: CourierJob,
    message: Buffer,
    pending: Pending[],
    outcomes: (DeliveryOutcome | undefined)[],
  ): Promise<'done' | HostFailure> {
    const host = session.peer;
    let results: RecipientResult[];
    try {
      results = await session.send({ sender: job.sender, recipients: pending.map((p) => p.recipient), message, mailParams: job.mailParams });
    } catch (err) {
      if (!(err instanceof SmtpClientError)) throw err;
      this.opts.logger.info({ queue_id: job.queueId, host, reason: err.message }, 'delivery: session failed, trying the next host');
      return { reason: err.message, reply: err.reply, remoteHost: host };
    }
    const first = results[0];
    // RFC 5321 5.1: a temporary refusal of the sender says nothing about the other MX hosts.
    if (first?.kind === 'reply' && first.stage === 'mail' && first.reply.code < 500 && first.reply.code >= 400) {
      return { reason: `${host} temporarily refused the sender: ${replyLine(first.reply)}`, reply: first.reply, remoteHost: host };
    }
    const peerDsn = session.extensions.has('DSN');
    results.forEach((result, k) => {
      const p = pending[k];
      if (p) outcomes[p.index] = recipientOutcome(result, host, peerDsn && p.recipient.notify !== undefined);
    });
    this.opts.logger.info(
      { queue_id: job.queueId, host, tls: session.tls?.version ?? 'none', outcomes: results.map((r) => (r.kind === 'reply' ? r.reply.code : r.kind === 'refused' ? r.status : 'no reply')) },
      'delivery: transaction finished',
    );
    return 'done';
  }

  /** TLS demands and the hosts allowed, from the route and the domain's MTA-STS policy; a string: defer for this reason. */
  private async plan(job: CourierJob, via: Via, destination: string, hosts: readonly NextHost[]): Promise<Plan | string> {
    if (via === 'smarthost') {
      const tls = this.smarthostTls();
      return { hosts, tls, via, poolKey: `${destination}|${tlsTag(tls)}` };
    }
    const policy = via === 'mx' ? await this.mtaStsPolicy(job) : undefined;
    if (policy?.mode === 'enforce') {
      // RFC 8461 section 4: only MX hosts the policy names, only over TLS with a valid certificate.
      const allowed = hosts.filter((h) => mxMatchesPolicy(policy, h.name));
      if (allowed.length === 0) return `no mail server of ${job.domain} matches its MTA-STS policy (mx: ${policy.mx.join(', ')})`;
      const tls: TlsMode = { kind: 'starttls', verify: true };
      return { hosts: allowed, tls, via, poolKey: `${destination}|${tlsTag(tls)}` };
    }
    if (policy?.mode === 'testing') {
      const outside = hosts.filter((h) => !mxMatchesPolicy(policy, h.name)).map((h) => h.name);
      // RFC 8461 section 5: testing mode reports policy failures but delivers as usual.
      if (outside.length > 0) this.opts.logger.warn({ domain: job.domain, hosts: outside }, 'mta-sts (testing): MX hosts not in the policy');
    }
    const tls: TlsMode = { kind: 'opportunistic' };
    return { hosts, tls, via, poolKey: `${destination}|${tlsTag(tls)}` };
  }

  private async mtaStsPolicy(job: CourierJob): Promise<MtaStsPolicy | undefined> {
    if (!this.opts.mtaSts) return undefined;
    try {
      return await this.opts.mtaSts.policyFor(job.domain);
    } catch (err) {
      this.opts.logger.warn({ err, domain: job.domain }, 'mta-sts: policy lookup failed, delivering without it');
      return undefined;
    }
  }

  private smarthostTls(): TlsMode {
    const { smarthost_tls: mode, smarthost_tls_verify: verify } = this.opts.config.relay;
    switch (mode) {
      case 'starttls':
        return { kind: 'starttls', verify };
      case 'implicit':
        return { kind: 'implicit', verify };
      case 'none':
        return { kind: 'none' };
    }
  }

  private async sign(job: CourierJob): Promise<Buffer> {
    if (!this.opts.signer) return job.message;
    const domain = splitAddress(job.sender)?.domain ?? this.opts.config.hostname;
    return this.opts.signer.sign(job.message, domain);
  }
}

function tlsTag(tls: TlsMode): string {
  return tls.kind === 'starttls' || tls.kind === 'implicit' ? `${tls.kind}${tls.verify ? '+verify' : ''}` : tls.kind;
}

function smarthostCredentials(relay: Config['relay']): { username: string; password: string } | undefined {
  if (relay.smarthost_username === '') return undefined;
  if (relay.smarthost_password !== '' && relay.smarthost_password_file !== '') {
    throw new Error('[relay] set smarthost_password or smarthost_password_file, not both');
  }
  const password =
    relay.smarthost_password_file !== '' ? (readFileSync(relay.smarthost_password_file, 'utf8').split(/\r?\n/)[0] ?? '') : relay.smarthost_password;
  return { username: relay.smarthost_username, password };
}
