// LOGIN: never standardized (draft-murchison-sasl-login), but what Outlook and many devices
// speak. The server asks "Username:" then "Password:"; an initial response is the user name.
// The password crosses the wire, so like PLAIN it is offered only inside TLS.

import type { CredentialSource } from './credentials.js';
import type { SaslContext, SaslExchange, SaslMechanism, SaslStep } from './mechanism.js';
import { checkPassword } from './password-check.js';
import { decodeUtf8 } from './sasl-text.js';

const USERNAME_PROMPT = Buffer.from('Username:');
const PASSWORD_PROMPT = Buffer.from('Password:');
const MAX_USERNAME_OCTETS = 255;
const MAX_PASSWORD_OCTETS = 1024;

type LoginState =
  | { readonly kind: 'awaiting-username' }
  | { readonly kind: 'awaiting-password'; readonly username: string }
  | { readonly kind: 'done' };

export class LoginMechanism implements SaslMechanism {
  readonly name = 'LOGIN';

  constructor(private readonly credentials: CredentialSource) {}

  available(ctx: SaslContext): boolean {
    return ctx.secure;
  }

  begin(_ctx: SaslContext): SaslExchange {
    return new LoginExchange(this.credentials);
  }
}

class LoginExchange implements SaslExchange {
  private state: LoginState = { kind: 'awaiting-username' };

  constructor(private readonly credentials: CredentialSource) {}

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    if (initialResponse === undefined) return { kind: 'challenge', data: USERNAME_PROMPT };
    return this.step(initialResponse);
  }

  async step(response: Buffer): Promise<SaslStep> {
    const state = this.state;
    switch (state.kind) {
      case 'awaiting-username': {
        const username = response.length <= MAX_USERNAME_OCTETS ? decodeUtf8(response) : undefined;
        if (username === undefined || username === '') return this.fail('bad user name');
        this.state = { kind: 'awaiting-password', username };
        return { kind: 'challenge', data: PASSWORD_PROMPT };
      }
      case 'awaiting-password': {
        this.state = { kind: 'done' };
        const password = response.length <= MAX_PASSWORD_OCTETS ? decodeUtf8(response) : undefined;
        if (password === undefined) {
          return { kind: 'failure', reason: 'malformed', account: state.username, detail: 'bad password encoding' };
        }
        return checkPassword(this.credentials, state.username, password);
      }
      case 'done':
        return this.fail('response after the exchange ended');
    }
  }

  private fail(detail: string): SaslStep {
    this.state = { kind: 'done' };
    return { kind: 'failure', reason: 'malformed', detail };
  }
}
