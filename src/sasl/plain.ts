// PLAIN (RFC 4616): one message, [authzid] NUL authcid NUL passwd. The password crosses the
// wire, so it is offered only inside TLS; it is checked against the scrypt hash.

import type { CredentialSource } from './credentials.js';
import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from './mechanism.js';
import { checkPassword } from './password-check.js';
import { decodeUtf8, sameAccountName } from './sasl-text.js';

/** RFC 4616 section 2: authzid and authcid are at most 255 octets. */
const MAX_IDENTITY_OCTETS = 255;
/** Longer than RFC 4616's 255 for passphrases; bounded so a huge "password" costs nothing extra. */
const MAX_PASSWORD_OCTETS = 1024;

export class PlainMechanism implements SaslMechanism {
  readonly name = 'PLAIN';

  constructor(private readonly credentials: CredentialSource) {}

  available(ctx: SaslContext): boolean {
    return ctx.secure;
  }

  begin(_ctx: SaslContext): SaslExchange {
    return new PlainExchange(this.credentials);
  }
}

class PlainExchange implements SaslExchange {
  private state: 'awaiting-message' | 'done' = 'awaiting-message';

  constructor(private readonly credentials: CredentialSource) {}

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    // RFC 4616 section 2: without an initial response the server sends an empty challenge.
    if (initialResponse === undefined) return { kind: 'challenge', data: Buffer.alloc(0) };
    return this.step(initialResponse);
  }

  async step(response: Buffer): Promise<SaslStep> {
    if (this.state === 'done') return malformed('response after the exchange ended');
    this.state = 'done';
    return this.checkMessage(response);
  }

  private async checkMessage(message: Buffer): Promise<SaslStep> {
    const parts = splitNul(message);
    if (!parts) return malformed('expected [authzid] NUL authcid NUL passwd');
    const [authzidBytes, authcidBytes, passwordBytes] = parts;
    if (authcidBytes.length === 0 || passwordBytes.length === 0) return malformed('empty authcid or password');
    if (authzidBytes.length > MAX_IDENTITY_OCTETS || authcidBytes.length > MAX_IDENTITY_OCTETS) {
      return malformed('identity longer than 255 octets');
    }
    if (passwordBytes.length > MAX_PASSWORD_OCTETS) return malformed('password too long');
    const authzid = decodeUtf8(authzidBytes);
    const authcid = decodeUtf8(authcidBytes);
    const password = decodeUtf8(passwordBytes);
    if (authzid === undefined || authcid === undefined || password === undefined) return malformed('not UTF-8');
    if (authzid !== '' && !sameAccountName(authzid, authcid)) {
      return { kind: 'failure', reason: 'bad-credentials', account: authcid, detail: `may not act as ${authzid}` };
    }
    return checkPassword(this.credentials, authcid, password);
  }
}

function splitNul(message: Buffer): [Buffer, Buffer, Buffer] | undefined {
  const first = message.indexOf(0);
  const second = first < 0 ? -1 : message.indexOf(0, first + 1);
  if (second < 0 || message.indexOf(0, second + 1) >= 0) return undefined;
  return [message.subarray(0, first), message.subarray(first + 1, second), message.subarray(second + 1)];
}

function malformed(detail: string): SaslStep {
  return { kind: 'failure', reason: 'malformed', detail };
}
