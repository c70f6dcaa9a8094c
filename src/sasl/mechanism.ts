// SASL mechanisms (RFC 4422) as step machines: the SMTP session (RFC 4954 AUTH) feeds each client
// response in and gets back what to send. Mechanisms do no network I/O; credential lookups come
// through the CredentialSource they are given, so each one can be tested with RFC test vectors.

/** Facts about the connection a mechanism may need. */
export interface SaslContext {
  /** TLS is active (PLAIN/LOGIN are only offered then; the session enforces it). */
  readonly secure: boolean;
  /**
   * RFC 9266 tls-exporter channel binding data (32 octets exported with the label
   * "EXPORTER-Channel-Binding" and no context), for SCRAM-*-PLUS; undefined without TLS 1.3.
   */
  readonly channelBinding?: Buffer | undefined;
  /** Our hostname (CRAM-MD5 challenges name it). */
  readonly hostname: string;
}

export type SaslStep =
  /** Send "334 <base64 data>" and wait for the next response. */
  | { readonly kind: 'challenge'; readonly data: Buffer }
  /**
   * Authenticated as `identity` (the account's normalized address). SMTP has no place for extra
   * data in 235, so mechanisms with a server-final message (SCRAM) return it as a last challenge
   * first and succeed on the client's empty response (RFC 4954 section 4).
   */
  | { readonly kind: 'success'; readonly identity: string }
  /**
   * Authentication failed. `reason` is for the log only: the client always gets the same reply
   * (535 5.7.8) for unknown users and wrong passwords. `malformed` exchanges get 501 5.5.2.
   * `account` is the account name the client claimed, if any (for brute-force accounting).
   */
  | {
      readonly kind: 'failure';
      readonly reason: 'bad-credentials' | 'malformed' | 'unsupported';
      readonly account?: string | undefined;
      readonly detail?: string | undefined;
      /**
       * Not set by Postern's mechanisms: OAUTHBEARER/XOAUTH2 send their RFC 7628 3.2.2 error as an
       * ordinary challenge step and fail on the client's next response (see oauthbearer.ts). A
       * session that finds it set should send it as a challenge and fail after the client answers.
       */
      readonly challenge?: Buffer | undefined;
    };

/** One authentication exchange. A new instance per AUTH command. */
export interface SaslExchange {
  /** `initialResponse` is the decoded AUTH initial response (RFC 4954), if the client sent one. */
  start(initialResponse: Buffer | undefined): Promise<SaslStep>;
  step(response: Buffer): Promise<SaslStep>;
}

export interface SaslMechanism {
  /** The name in EHLO's AUTH line, e.g. "SCRAM-SHA-256". */
  readonly name: string;
  /** Whether it may be offered on this connection (e.g. -PLUS needs channel binding data). */
  available(ctx: SaslContext): boolean;
  begin(ctx: SaslContext): SaslExchange;
}
