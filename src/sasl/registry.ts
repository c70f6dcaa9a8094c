// Which mechanisms a listener offers, in order of preference: channel-bound SCRAM first, then
// SCRAM, then the mechanisms that send the password (inside TLS), then the opt-in CRAM-MD5, then
// bearer tokens when an identity provider is configured. Clients commonly pick the first they know.

import type { Config } from '../config/schema.js';
import { CramMd5Mechanism } from './cram-md5.js';
import type { CredentialSource } from './credentials.js';
import { LoginMechanism } from './login.js';
import type { SaslContext, SaslMechanism } from './mechanism.js';
import { OAuthBearerMechanism, XOAuth2Mechanism, type OAuthConfig } from './oauthbearer.js';
import { PlainMechanism } from './plain.js';
import { ScramMechanism } from './scram.js';

export interface MechanismOptions {
  readonly credentials: CredentialSource;
  /** Our hostname; CRAM-MD5 challenges use the connection's (SaslContext.hostname), normally the same. */
  readonly hostname: string;
  readonly oauth?: OAuthConfig | undefined;
  /** Names from [auth] mechanisms; anything not listed is not offered. */
  readonly enabled: readonly string[];
  /** Iterations announced to unknown accounts; [auth] scram_iterations. */
  readonly scramIterations?: number;
}

export function createMechanisms(opts: MechanismOptions): SaslMechanism[] {
  const { credentials } = opts;
  const enabled = new Set(opts.enabled);
  // RFC 5802 section 6: a client answering "y" must fail if we offered any -PLUS on this connection.
  const plusEnabled = enabled.has('SCRAM-SHA-256-PLUS') || enabled.has('SCRAM-SHA-1-PLUS');
  const bindingOffered = (ctx: SaslContext) => plusEnabled && ctx.channelBinding !== undefined;
  const scram = (hash: 'sha1' | 'sha256', plus: boolean) =>
    new ScramMechanism(credentials, { hash, plus, iterations: opts.scramIterations, bindingOffered });

  const all: SaslMechanism[] = [
    scram('sha256', true),
    scram('sha256', false),
    scram('sha1', true),
    scram('sha1', false),
    new PlainMechanism(credentials),
    new LoginMechanism(credentials),
    new CramMd5Mechanism(credentials),
  ];
  if (opts.oauth) {
    all.push(new OAuthBearerMechanism(opts.oauth, credentials), new XOAuth2Mechanism(opts.oauth, credentials));
  }
  return all.filter((m) => enabled.has(m.name));
}

/** The mechanisms the [auth] table asks for. */
export function createMechanismsFromConfig(config: Config, credentials: CredentialSource): SaslMechanism[] {
  const oauth = config.auth.oauth;
  return createMechanisms({
    credentials,
    hostname: config.hostname,
    enabled: config.auth.mechanisms,
    scramIterations: config.auth.scram_iterations,
    oauth: oauth && {
      jwksFile: oauth.jwks_file,
      issuer: oauth.issuer,
      audience: oauth.audience,
      identityClaim: oauth.identity_claim,
    },
  });
}
