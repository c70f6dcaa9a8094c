// `postern probe HOST`: tests a mail server from the outside the way a careful operator would,
// one section per port. runProbe() returns the report and prints nothing, so `postern probe`
// and `postern doctor` show it each their own way.
//
// Per port, in this order:
//   1. one session: greeting, reverse DNS, EHLO, AUTH before TLS (a made-up credential),
//      STARTTLS (or TLS from the first byte on 465), the certificate, EHLO and AUTH over TLS,
//      the open-relay forms, VRFY/EXPN, and with --rcpt the RCPT comparison;
//   2. one connection per TLS version (TLS 1.0 to 1.3);
//   3. STARTTLS with a command pipelined behind it;
//   4. with --user, one login per mechanism, and a MAIL FROM for another address;
//   5. with --rcpt, on the MX port only, the smuggling test: the only message the probe sends.
// Connections, commands and recipients are counted in a ProbeBudget; a session the server closes
// (after too many errors, say) is opened again, within the connection limit.

import { isIP } from 'node:net';
import type { SecureVersion as TlsVersion } from 'node:tls';
import { replyLine } from '../mail/reply.js';
import { createDnsClient, type DnsClient } from '../dns/resolver.js';
import { SmtpClientError } from '../delivery/client/reply-stream.js';
import { checkAuthAfterTls, checkAuthBeforeTls, KNOWN_MECHANISMS, login, offeredMechanisms, type KnownMechanism } from './auth-check.js';
import { checkConnection } from './connection-check.js';
import { lookUpReverseDns, type ReverseDns } from '../dns/reverse-dns.js';
import { checkEhlo } from './ehlo-check.js';
import { checkRcptDifference, checkVrfyExpn } from './enumeration-check.js';
import { ProbeBudget, ProbeConnection, type ProbeTarget, type TlsLimits } from './probe-connection.js';
import { relayForms, tryRelayForm } from './relay-check.js';
import { countFindings, DEFAULT_PORTS, Findings, ROLES, type ProbeReport, type ProbeRole, type ProbeSection } from './report.js';
import { checkSmuggling } from './smuggling-check.js';
import { checkStartTlsInjection } from './starttls-injection-check.js';
import { checkCertificate, checkNegotiated, checkStartTlsOffered, checkVersions, PROBED_VERSIONS } from './tls-check.js';

export interface ProbeOptions {
  readonly host: string;
  readonly ports?: Partial<Record<ProbeRole, number>>;
  /** The roles to probe; default all three. */
  readonly only?: readonly ProbeRole[];
  /** DNS servers ("127.0.0.1:5353"); default the system's. */
  readonly dnsServers?: readonly string[];
  /** An account to log in with (over TLS only). */
  readonly user?: { readonly username: string; readonly password: string };
  /** A real local address: the RCPT comparison and the one smuggling test message go there. */
  readonly rcpt?: string;
  /** Extra trust anchors (PEM) for the certificate chain check. */
  readonly ca?: readonly string[];
  /** Wait at most this long for any reply; default 30 s. */
  readonly replyTimeoutMs?: number;
  /** How long silence must last to count as "no reply" (smuggling, injection); default 1.5 s. */
  readonly quietMs?: number;
  /** Connections per probe, all ports together; default 60. */
  readonly maxConnections?: number;
  /** No new connection after this many milliseconds from the start; default 5 minutes. */
  readonly maxDurationMs?: number;
}

/** The host cannot be probed at all (no address for it). */
export class ProbeError extends Error {
  override readonly name = 'ProbeError';
}

export async function runProbe(options: ProbeOptions): Promise<ProbeReport> {
  const started = Date.now();
  const budget = new ProbeBudget(options.replyTimeoutMs ?? 30_000, options.maxConnections ?? 60, started + (options.maxDurationMs ?? 300_000));
  const dns = createDnsClient({ servers: options.dnsServers ? [...options.dnsServers] : [], timeoutMs: 3000 });
  const host = options.host.replace(/\.$/, '').toLowerCase();
  const address = await resolveHost(dns, host);
  const rdns = await lookUpReverseDns(dns, address);
  const sections: ProbeSection[] = [];
  for (const role of ROLES) {
    if (options.only && !options.only.includes(role)) continue;
    const port = options.ports?.[role] ?? DEFAULT_PORTS[role];
    const target: ProbeTarget = { host, address, port };
    const findings = await new RoleProbe(role, target, budget, options, rdns).run();
    sections.push({ role, host, address, port, findings });
  }
  return {
    host,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    sections,
    sent: { connections: budget.connections, commands: budget.commands, recipientsTried: budget.recipientsTried, messages: budget.messages },
    counts: countFindings(sections),
  };
}

async function resolveHost(dns: DnsClient, host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  const v4 = await dns.a(host).catch(() => [] as string[]);
  if (v4[0]) return v4[0];
  const v6 = await dns.aaaa(host).catch(() => [] as string[]);
  if (v6[0]) return v6[0];
  throw new ProbeError(`${host} has no A or AAAA record: check the name, or the DNS server given with --dns`);
}

/** A session over TLS (when there is TLS), ready for commands. */
interface ReadySession {
  readonly conn: ProbeConnection;
  readonly ext: ReadonlyMap<string, string>;
}

class RoleProbe {
  readonly f = new Findings();
  private readonly implicit: boolean;
  private readonly tlsLimits: TlsLimits;
  private readonly localDomain: string;

  constructor(
    private readonly role: ProbeRole,
    private readonly target: ProbeTarget,
    private readonly budget: ProbeBudget,
    private readonly options: ProbeOptions,
    private readonly rdns: ReverseDns,
  ) {
    this.implicit = role === 'submissions';
    this.tlsLimits = options.ca ? { ca: options.ca } : {};
    const rcpt = options.rcpt;
    this.localDomain = rcpt ? rcpt.slice(rcpt.lastIndexOf('@') + 1) : target.host;
  }

  async run(): Promise<Findings['list']> {
    const main = await this.step('connection', () => this.mainSession());
    if (main === 'unreachable') return this.f.list;
    if (!this.implicit || main !== undefined) {
      await this.step('tls.versions', () => this.versions());
    }
    if (!this.implicit) await this.step('starttls-injection', () => this.injection());
    if (this.options.user) await this.step('auth.login', () => this.logins());
    if (this.options.rcpt && this.role === 'mx') await this.step('smuggling', () => this.smuggling());
    return this.f.list;
  }

  /** Runs one group of checks; a broken connection is a finding, never the end of the probe. */
  private async step<T>(check: string, body: () => Promise<T>): Promise<T | undefined> {
    try {
      return await body();
    } catch (err) {
      if (!(err instanceof SmtpClientError)) throw err;
      this.f.warn(check, `This check could not finish: ${err.message}.`, 'Check that the server is up and does not limit this client; run the probe again.');
      return undefined;
    }
  }

  private async mainSession(): Promise<'unreachable' | 'done'> {
    let conn: ProbeConnection;
    try {
      conn = await ProbeConnection.open(this.target, this.budget, this.implicit ? this.tlsLimits : undefined);
    } catch (err) {
      if (!(err instanceof SmtpClientError)) throw err;
      this.f.fail('connection', `Cannot open a session on port ${this.target.port}: ${err.message}.`, `Check that the server listens on port ${this.target.port} and that no firewall blocks it.`);
      return 'unreachable';
    }
    try {
      checkConnection(this.f, conn, this.role, this.rdns);
      if (conn.greeting.code !== 220) return 'unreachable';
      if (conn.tls) {
        this.f.pass('tls.implicit', 'TLS starts with the first byte (RFC 8314).');
        this.tlsFindings(conn, 'TLS on connect');
      }
      let { reply, extensions } = await conn.ehlo();
      if (!this.implicit) {
        checkEhlo(this.f, reply, extensions, 'before TLS');
        await checkAuthBeforeTls(this.f, conn, extensions);
        if (checkStartTlsOffered(this.f, extensions)) {
          const r = await conn.command('STARTTLS');
          if (r.code !== 220) {
            this.f.fail('tls.starttls', `STARTTLS is offered but refused: "${replyLine(r)}".`, 'Check the certificate and key the server is configured with.');
          } else {
            await conn.startTls(this.tlsLimits);
            this.tlsFindings(conn, 'STARTTLS');
            ({ reply, extensions } = await conn.ehlo());
            checkEhlo(this.f, reply, extensions, 'over TLS');
          }
        }
      } else {
        checkEhlo(this.f, reply, extensions, 'over TLS');
      }
      if (conn.tls) checkAuthAfterTls(this.f, extensions, this.role);

      let session: ReadySession = { conn, ext: extensions };
      for (const form of relayForms(this.localDomain, this.target.address)) {
        session = await this.usable(session);
        await tryRelayForm(this.f, session.conn, form, this.budget.recipientsTried);
      }
      session = await this.usable(session);
      await checkVrfyExpn(this.f, session.conn, this.localDomain);
      if (this.options.rcpt) {
        session = await this.usable(session);
        await checkRcptDifference(this.f, session.conn, this.role, this.options.rcpt, this.budget.recipientsTried);
      }
      await session.conn.quit();
      return 'done';
    } finally {
      conn.close();
    }
  }

  private tlsFindings(conn: ProbeConnection, how: string): void {
    if (!conn.tls) return;
    checkNegotiated(this.f, conn.tls, how);
    checkCertificate(this.f, conn.tls, this.target.host);
  }

  /** `s` if the server still talks on it, else a new ready session. */
  private async usable(s: ReadySession): Promise<ReadySession> {
    try {
      const r = await s.conn.command('NOOP');
      if (r.code === 250) return s;
    } catch (err) {
      if (!(err instanceof SmtpClientError)) throw err;
    }
    s.conn.close();
    return this.openReady();
  }

  /** A new session: greeting, EHLO, and TLS (STARTTLS when offered, or implicit), EHLO again. */
  private async openReady(tls: TlsLimits = this.tlsLimits): Promise<ReadySession> {
    const conn = await ProbeConnection.open(this.target, this.budget, this.implicit ? tls : undefined);
    try {
      if (conn.greeting.code !== 220) throw new SmtpClientError(`the server greeted with "${replyLine(conn.greeting)}"`);
      let { reply, extensions } = await conn.ehlo();
      if (reply.code !== 250) throw new SmtpClientError(`EHLO was refused: "${replyLine(reply)}"`);
      if (!this.implicit && extensions.has('STARTTLS')) {
        const r = await conn.command('STARTTLS');
        if (r.code !== 220) throw new SmtpClientError(`STARTTLS was refused: "${replyLine(r)}"`);
        await conn.startTls(tls);
        ({ reply, extensions } = await conn.ehlo());
        if (reply.code !== 250) throw new SmtpClientError(`EHLO over TLS was refused: "${replyLine(reply)}"`);
      }
      return { conn, ext: extensions };
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  private async versions(): Promise<void> {
    const accepted: TlsVersion[] = [];
    const failed = new Map<TlsVersion, string>();
    for (const version of PROBED_VERSIONS) {
      try {
        const s = await this.openReady({ ...this.tlsLimits, version });
        if (s.conn.tls?.version === version) accepted.push(version);
        await s.conn.quit();
      } catch (err) {
        if (!(err instanceof SmtpClientError)) throw err;
        // A refused handshake is the answer; anything before it (no STARTTLS) is reported elsewhere.
        if (!/TLS handshake/.test(err.message)) throw err;
        failed.set(version, err.message.replace(/^TLS handshake failed: /, ''));
      }
    }
    checkVersions(this.f, accepted, failed);
  }

  private async injection(): Promise<void> {
    const conn = await ProbeConnection.open(this.target, this.budget);
    try {
      if (conn.greeting.code !== 220) return;
      const { extensions } = await conn.ehlo();
      if (!extensions.has('STARTTLS')) return;
      await checkStartTlsInjection(this.f, conn, this.tlsLimits, this.options.quietMs ?? 1500);
    } finally {
      conn.close();
    }
  }

  private async logins(): Promise<void> {
    const user = this.options.user;
    if (!user) return;
    const first = await this.openReady();
    const offered = offeredMechanisms(first.ext);
    first.conn.close();
    if (!first.conn.tls) {
      this.f.info('auth.login', 'Login not tried: this port has no TLS, and the probe sends credentials only over TLS.');
      return;
    }
    const known = offered.filter((m): m is KnownMechanism => (KNOWN_MECHANISMS as readonly string[]).includes(m));
    const unknown = offered.filter((m) => !known.includes(m as KnownMechanism));
    if (unknown.length > 0) this.f.info('auth.login', `Not tried (the probe does not speak them): ${unknown.join(' ')}.`);
    if (known.length === 0) {
      if (offered.length > 0 || this.role !== 'mx') this.f.info('auth.login', `No mechanism the probe speaks (${KNOWN_MECHANISMS.join(', ')}) is offered over TLS.`);
      return;
    }
    let mismatchTested = false;
    for (const mechanism of known) {
      const s = await this.openReady();
      try {
        if (mechanism.endsWith('-PLUS') && !s.conn.channelBinding()) {
          this.f.info(`auth.login.${mechanism.toLowerCase()}`, `${mechanism} not tried: its tls-exporter channel binding (RFC 9266) needs TLS 1.3, and this session has ${s.conn.tls?.version ?? 'no TLS'}.`);
          continue;
        }
        const r = await login(s.conn, mechanism, user.username, user.password);
        if (r.code !== 235) {
          this.f.fail(`auth.login.${mechanism.toLowerCase()}`, `Login as ${user.username} with ${mechanism} failed: "${replyLine(r)}".`, `Check the password, and that the server's ${mechanism} works (it is offered).`);
          continue;
        }
        this.f.pass(`auth.login.${mechanism.toLowerCase()}`, `Login as ${user.username} with ${mechanism} works.`);
        if (!mismatchTested) {
          mismatchTested = true;
          await this.senderMismatch(s.conn, user.username);
        }
      } finally {
        await s.conn.quit();
      }
    }
  }

  /** After a login: MAIL FROM another address of the same domain, RCPT to the user itself, RSET. */
  private async senderMismatch(conn: ProbeConnection, username: string): Promise<void> {
    const domain = username.includes('@') ? username.slice(username.lastIndexOf('@') + 1) : this.localDomain;
    const other = `postern-probe-someone-else@${domain}`;
    const self = username.includes('@') ? username : (this.options.rcpt ?? `postmaster@${domain}`);
    const mail = await conn.command(`MAIL FROM:<${other}>`);
    let accepted = mail.code === 250;
    let reply = mail;
    if (accepted) {
      this.budget.recipientsTried.push(self);
      reply = await conn.command(`RCPT TO:<${self}>`);
      accepted = reply.code >= 200 && reply.code < 300;
    }
    await conn.command('RSET');
    if (accepted) {
      this.f.fail('auth.sender-mismatch', `Logged in as ${username}, the probe could send as ${other}.`, 'Refuse senders the login does not own (Postfix: reject_sender_login_mismatch with smtpd_sender_login_maps).');
    } else {
      this.f.pass('auth.sender-mismatch', `Logged in as ${username}, sending as ${other} is refused: "${replyLine(reply)}".`);
    }
  }

  private async smuggling(): Promise<void> {
    const rcpt = this.options.rcpt;
    if (!rcpt) return;
    const s = await this.openReady();
    try {
      await checkSmuggling(this.f, s.conn, rcpt, this.target.host, this.options.quietMs ?? 1500, () =>
        this.budget.messages.push({ to: rcpt, port: this.target.port, purpose: 'SMTP smuggling test' }),
      );
      await s.conn.quit();
    } finally {
      s.conn.close();
    }
  }
}
