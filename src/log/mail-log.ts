// The two log lines an operator greps for, like chasquid's maillog. Their keys are an interface
// (log shippers and alerting rules depend on them): add keys, never rename or remove one.
//
// One line per connection, when it ends:
//   { msg: "connection", client_ip, client_port, listener, helo, tls_version, tls_cipher,
//     messages, rejected, errors, duration_ms, outcome }
//   helo/tls_version/tls_cipher are null when absent; outcome is a ConnectionOutcome.
//
// One line per message transaction (accepted or refused after DATA/BDAT):
//   { msg: "message", queue_id, client_ip, helo, auth_user, tls_version, tls_cipher, sender,
//     recipients, size, outcome }
//   queue_id is null when the message was refused; outcome is the final reply,
//   "<code> <enhanced> <text>", e.g. "250 2.0.0 OK: queued as 0H3x...". auth_user is the account
//   the client authenticated as (null without AUTH): who is accountable for a submitted message.
//   sender_auth is null for a message that was not checked (submission, trusted networks,
//   [sender_auth] off), else what sender authentication found and did:
//     { action: "deliver" | "quarantine" | "reject", reason, removed_fields,
//       spf: { result, domain }, dkim: [{ result, domain, selector }, ...],
//       dmarc: { result, domain, policy, pct, applied }, arc: { result, instance },
//       iprev: { result, ip, name } }
//   reason says what made the action ("dmarc example.com p=reject"), null when nothing failed;
//   removed_fields counts Authentication-Results fields that claimed our authserv-id.
//
// One line per recipient and delivery attempt, the same for every courier:
//   { msg: "local delivery attempt" | "remote delivery attempt", queue_id, recipient, status,
//     reply, reason, remote_host, attempts, mailboxes }
//   status is where the recipient stands after the attempt (delivered, deferred, failed); reply
//   is the last reply, "<code> <enhanced> <text>" or null when nobody answered; remote_host is who
//   gave it: the next hop, the LMTP server ("unix:/run/dovecot/lmtp", "127.0.0.1:24"), or our
//   hostname for a Maildir. mailboxes lists the local mailboxes that got their copy in this
//   attempt ([] for a remote recipient).

import type { Logger } from 'pino';
import type { ListenerKind } from '../mail/envelope.js';
import type { TlsInfo } from '../mail/tls-info.js';
import type { SenderAuthReport } from '../sender-auth/verdict.js';
import type { TransactionEvent } from '../smtp/session-host.js';

/**
 * How a connection ended: the session closed it (QUIT, too many errors, early talker...),
 * the client went away, the idle timer fired, TLS failed, the server shut down, a socket error,
 * or it was refused at accept time by the connection limits.
 */
export type ConnectionOutcome =
  | 'closed'
  | 'disconnected'
  | 'timeout'
  | 'tls-failed'
  | 'shutdown'
  | 'error'
  | 'refused'
  // Talked before the greeting (src/smtp/session.ts start).
  | 'pregreet'
  // Refused by the DNS lists of [screen] (src/server/client-screen.ts).
  | 'dnsbl';

export interface ConnectionRecord {
  readonly clientIp: string;
  readonly clientPort: number;
  readonly listener: ListenerKind;
  readonly helo: string | undefined;
  readonly tls: TlsInfo | undefined;
  readonly messages: number;
  readonly rejected: number;
  readonly errors: number;
  readonly durationMs: number;
  readonly outcome: ConnectionOutcome;
}

export function logConnection(logger: Logger, c: ConnectionRecord): void {
  logger.info(
    {
      client_ip: c.clientIp,
      client_port: c.clientPort,
      listener: c.listener,
      helo: c.helo ?? null,
      tls_version: c.tls?.version ?? null,
      tls_cipher: c.tls?.cipher ?? null,
      messages: c.messages,
      rejected: c.rejected,
      errors: c.errors,
      duration_ms: c.durationMs,
      outcome: c.outcome,
    },
    'connection',
  );
}

export interface DeliveryAttemptRecord {
  readonly queueId: string;
  readonly local: boolean;
  readonly recipient: string;
  readonly status: string;
  readonly reply: string | null;
  readonly reason: string | null;
  readonly remoteHost: string | null;
  readonly attempts: number;
  readonly mailboxes: readonly string[];
}

export function logDeliveryAttempt(logger: Logger, d: DeliveryAttemptRecord): void {
  logger.info(
    {
      queue_id: d.queueId,
      recipient: d.recipient,
      status: d.status,
      reply: d.reply,
      reason: d.reason,
      remote_host: d.remoteHost,
      attempts: d.attempts,
      mailboxes: d.mailboxes,
    },
    d.local ? 'local delivery attempt' : 'remote delivery attempt',
  );
}

export function logMessage(
  logger: Logger,
  client: { readonly clientIp: string; readonly helo: string | undefined; readonly tls?: TlsInfo | undefined },
  t: TransactionEvent,
): void {
  const r = t.outcome;
  const text = r.lines.join(' ');
  logger.info(
    {
      queue_id: t.queueId ?? null,
      client_ip: client.clientIp,
      helo: client.helo ?? null,
      auth_user: t.authUser ?? null,
      tls_version: client.tls?.version ?? null,
      tls_cipher: client.tls?.cipher ?? null,
      sender: t.sender,
      recipients: t.recipients,
      size: t.size,
      outcome: r.enhanced !== undefined ? `${r.code} ${r.enhanced} ${text}` : `${r.code} ${text}`,
      sender_auth: t.senderAuth ? senderAuthFields(t.senderAuth) : null,
    },
    'message',
  );
}

function senderAuthFields(report: SenderAuthReport): Record<string, unknown> {
  const { spf, dkim, dmarc, arc, iprev } = report.verdict;
  return {
    action: report.action,
    reason: report.reason ?? null,
    removed_fields: report.removedFields,
    spf: { result: spf.result, domain: spf.domain ?? null },
    dkim: dkim.map((d) => ({ result: d.result, domain: d.domain ?? null, selector: d.selector ?? null })),
    dmarc: { result: dmarc.result, domain: dmarc.domain ?? null, policy: dmarc.policy ?? null, pct: dmarc.pct, applied: report.appliedDmarcPolicy ?? null },
    arc: { result: arc.result, instance: arc.instance ?? null },
    iprev: { result: iprev.result, ip: iprev.ip, name: iprev.name ?? null },
  };
}
