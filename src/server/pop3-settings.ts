// What a new POP3 connection is given, derived from the config like connection-settings.ts does
// for SMTP: the session's limits, the maildrops, the password check and the brute-force guard
// shared with SMTP AUTH (one failure count per client IP and per account across both protocols).

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { MaildropOpener, Pop3Guard } from '../pop3/pop3-host.js';
import type { CredentialSource } from '../sasl/credentials.js';
import type { SaslMechanism } from '../sasl/mechanism.js';
import { checkPassword } from '../sasl/password-check.js';
import type { AuthGuard } from '../smtp/session-host.js';
import type { HandshakeCertificates } from '../tls/tls-handshake.js';
import type { Pop3ConnectionSettings } from './pop3-connection.js';

export function pop3SettingsFor(
  config: Config,
  parts: {
    maildrops: MaildropOpener;
    credentials: CredentialSource;
    authGuard: AuthGuard;
    mechanisms: readonly SaslMechanism[];
    certificates: HandshakeCertificates;
    logger: Logger;
  },
): Record<'pop3' | 'pop3s', Pop3ConnectionSettings> {
  const { pop3 } = config;
  const guard = pop3GuardOf(parts.authGuard);
  const idleTimeoutMs = pop3.idle_timeout * 1000;
  const settings = (stls: boolean): Pop3ConnectionSettings => ({
    session: {
      hostname: config.hostname,
      // STLS where TLS is not up yet; on pop3s it is (RFC 8314 3.3).
      stls,
      mechanisms: parts.mechanisms,
      limits: { maxCommandLine: pop3.max_command_line, maxCommands: pop3.max_commands, maxErrors: pop3.max_errors },
    },
    maildrops: parts.maildrops,
    // The same check as SMTP AUTH PLAIN/LOGIN: a decoy hash for unknown users, so both cost alike.
    checkPassword: async (user, password) => {
      const step = await checkPassword(parts.credentials, user, password);
      return step.kind === 'success' ? step.identity : undefined;
    },
    guard,
    certificates: parts.certificates,
    idleTimeoutMs,
    handshakeTimeoutMs: Math.min(idleTimeoutMs, 60_000),
    logger: parts.logger,
  });
  return { pop3: settings(true), pop3s: settings(false) };
}

/** The SMTP AUTH throttle, as the POP3 session asks it. */
function pop3GuardOf(guard: AuthGuard): Pop3Guard {
  return {
    ipLocked: (ip) => guard.beforeAttempt(ip) !== undefined,
    failure: (ip, account, mechanism) => guard.failure(ip, account, mechanism),
    success: (ip, account) => guard.success(ip, account),
    isAccountLocked: (account) => guard.isAccountLocked(account),
  };
}
