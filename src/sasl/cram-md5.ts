// CRAM-MD5 (RFC 2195): the server sends a unique challenge, the client answers with its name and
// HMAC-MD5(password, challenge) in hex. The password never crosses the wire, but the server
// must keep a password-equivalent secret (see src/auth/cram-md5-secret.ts), so it is opt-in.

import { randomInt, timingSafeEqual } from 'node:crypto';
import { cramMd5Digest } from '../auth/cram-md5-secret.js';
import type { CredentialSource } from './credentials.js';
import { DECOY_CRAM_MD5_SECRET } from './decoy.js';
import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from './mechanism.js';
import { decodeUtf8 } from './sasl-text.js';

export interface CramMd5Options {
  /** For tests: the challenge to send instead of a fresh one. */
  readonly challenge?: (hostname: string) => string;
}

/** RFC 2195 section 2: the challenge looks like a msg-id, "<random.timestamp@hostname>". */
export function newCramMd5Challenge(hostname: string): string {
  return `<${randomInt(1, 2 ** 47)}.${Date.now()}@${hostname}>`;
}

export class CramMd5Mechanism implements SaslMechanism {
  readonly name = 'CRAM-MD5';

  constructor(
    private readonly credentials: CredentialSource,
    private readonly options: CramMd5Options = {},
  ) {}

  available(_ctx: SaslContext): boolean {
    return true;
  }

  begin(ctx: SaslContext): SaslExchange {
    const challenge = (this.options.challenge ?? newCramMd5Challenge)(ctx.hostname);
    return new CramMd5Exchange(this.credentials, Buffer.from(challenge));
  }
}

class CramMd5Exchange implements SaslExchange {
  private state: 'awaiting-digest' | 'done' = 'awaiting-digest';

  constructor(
    private readonly credentials: CredentialSource,
    private readonly challenge: Buffer,
  ) {}

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    // The server speaks first in CRAM-MD5; an initial response cannot answer a challenge not yet sent.
    if (initialResponse !== undefined) return this.fail('initial response not allowed');
    return { kind: 'challenge', data: this.challenge };
  }

  async step(response: Buffer): Promise<SaslStep> {
    if (this.state === 'done') return this.fail('response after the exchange ended');
    this.state = 'done';
    const text = decodeUtf8(response);
    // The user name may contain spaces; the digest is the last word.
    const m = text === undefined ? null : /^(.+) ([0-9a-fA-F]{32})$/s.exec(text);
    if (!m) return this.fail('expected "user digest"');
    const [, username = '', digestHex = ''] = m;
    const digest = Buffer.from(digestHex, 'hex');

    const stored = await this.credentials.lookup(username);
    const secret = stored?.cramMd5 ?? DECOY_CRAM_MD5_SECRET;
    const matches = timingSafeEqual(cramMd5Digest(secret, this.challenge), digest);
    if (stored?.cramMd5 && matches) return { kind: 'success', identity: stored.account };
    const detail = !stored ? 'unknown account' : stored.cramMd5 ? 'wrong password' : 'no CRAM-MD5 secret stored';
    return { kind: 'failure', reason: 'bad-credentials', account: username, detail };
  }

  private fail(detail: string): SaslStep {
    this.state = 'done';
    return { kind: 'failure', reason: 'malformed', detail };
  }
}
