// The protocol name for the Received header's "with" clause and the log (RFC 3848, RFC 6531 3.7.3):
// SMTP after HELO; ESMTP after EHLO, with "S" when TLS was up and "A" when the client authenticated;
// UTF8SMTP instead of ESMTP when the transaction used SMTPUTF8.

export interface ProtocolFacts {
  readonly esmtp: boolean;
  readonly tls: boolean;
  readonly authenticated: boolean;
  readonly smtputf8: boolean;
}

export function receivedProtocol(facts: ProtocolFacts): string {
  if (!facts.esmtp) return 'SMTP';
  const base = facts.smtputf8 ? 'UTF8SMTP' : 'ESMTP';
  return `${base}${facts.tls ? 'S' : ''}${facts.authenticated ? 'A' : ''}`;
}
