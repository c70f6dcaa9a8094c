// What a new connection is given: everything derived from the config that a session and its
// socket need. Built at start and again on reload; a connection keeps the snapshot it was born
// with, so a reload never changes the rules under an open session.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ListenerKind } from '../mail/envelope.js';
import type { SaslMechanism } from '../sasl/mechanism.js';
import type { AuthGuard, MessageAuthenticator, MessageSink, SessionConfig, SessionPolicy } from '../smtp/session-host.js';
import type { HandshakeCertificates } from '../tls/tls-handshake.js';
import type { ClientScreen } from './client-screen.js';

export interface ConnectionSettings {
  readonly session: SessionConfig;
  readonly policy: SessionPolicy;
  /** One per server (not per reload): failure counts must outlive a SIGHUP. */
  readonly authGuard: AuthGuard;
  readonly sink: MessageSink;
  /** Used for this connection's handshake (implicit TLS or STARTTLS); reloaded in place. */
  readonly certificates: HandshakeCertificates;
  readonly commandTimeoutMs: number;
  readonly dataTimeoutMs: number;
  /** How long to wait for a TLS handshake to complete. */
  readonly handshakeTimeoutMs: number;
  readonly greetingDelayMs: number;
  /** The DNS lists asked before the greeting; MX listener only, undefined when none are set. */
  readonly screen?: ClientScreen | undefined;
  /** Sender authentication after DATA; MX listener only, undefined when [sender_auth] is off. */
  readonly authenticator?: MessageAuthenticator | undefined;
  readonly logger: Logger;
}

export const LISTENER_KINDS: readonly ListenerKind[] = ['mx', 'submission', 'submissions'];

export function sessionConfigFor(
  config: Config,
  kind: ListenerKind,
  mechanisms: readonly SaslMechanism[] = [],
): SessionConfig {
  const l = config.limits;
  return {
    hostname: config.hostname,
    listener: kind,
    limits: {
      maxMessageSize: l.max_message_size,
      maxRecipients: l.max_recipients,
      maxCommandLine: l.max_command_line,
      maxTextLine: l.max_text_line,
      maxErrors: l.max_errors,
      maxMessagesPerConnection: l.max_messages_per_connection,
    },
    bareNewline: config.smtp.bare_newline,
    // We always have a certificate (configured or generated), so STARTTLS is offered wherever TLS
    // is not already up; on submissions it is (implicit TLS, RFC 8314 3.3).
    starttls: kind !== 'submissions',
    // RFC 8314 and RFC 4954 4: passwords only inside TLS. The MX listener serves other servers,
    // which do not log in; [auth] mx = true offers AUTH there too (after STARTTLS).
    auth: kind !== 'mx' || config.auth.mx ? 'after-tls' : 'never',
    // The submission ports take mail from authenticated users only (RFC 6409 4.3, RFC 4954 6).
    requireAuth: kind !== 'mx',
    mechanisms,
  };
}

export function connectionSettingsFor(
  config: Config,
  parts: {
    policy: SessionPolicy;
    authGuard: AuthGuard;
    mechanisms: readonly SaslMechanism[];
    sink: MessageSink;
    certificates: HandshakeCertificates;
    logger: Logger;
    screen?: ClientScreen | undefined;
    authenticator?: MessageAuthenticator | undefined;
  },
): Record<ListenerKind, ConnectionSettings> {
  const { mechanisms, screen, authenticator, ...shared } = parts;
  const commandTimeoutMs = config.limits.command_timeout * 1000;
  const common = {
    ...shared,
    commandTimeoutMs,
    dataTimeoutMs: config.limits.data_timeout * 1000,
    // A handshake is a few round trips; a minute is generous and stops a slow-loris on TLS.
    handshakeTimeoutMs: Math.min(commandTimeoutMs, 60_000),
    greetingDelayMs: config.limits.greeting_delay_ms,
  };
  return {
    // Submission is not screened: its users log in, often from dynamic addresses the lists name.
    // Nor is its mail's sender authenticated: the account is (RFC 6409).
    mx: { ...common, screen, authenticator, session: sessionConfigFor(config, 'mx', mechanisms) },
    submission: { ...common, session: sessionConfigFor(config, 'submission', mechanisms) },
    submissions: { ...common, session: sessionConfigFor(config, 'submissions', mechanisms) },
  };
}
