// Envelopes for tests of the queue and delivery (not used by the server itself).

import type { Envelope } from '../../src/mail/envelope.js';

/** `receivedAt` defaults to a fixed date (stable headers); queue tests pass Date.now() (retry and give-up times count from it). */
export function testEnvelope(
  recipients: { address: string; mailboxes: string[] }[],
  sender = 'sender@remote.test',
  receivedAt = Date.UTC(2025, 0, 2, 3, 4, 5),
): Envelope {
  return {
    sender,
    mailParams: { body: '8BITMIME' },
    recipients: recipients.map((r) => ({ address: r.address, params: {}, mailboxes: r.mailboxes })),
    arrival: {
      clientIp: '192.0.2.10',
      clientPort: 40000,
      helo: 'client.remote.test',
      protocol: 'ESMTPS',
      listener: 'mx',
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
      receivedAt,
    },
  };
}

export function testMessage(n: number, size = 1024): Buffer {
  const head = `Subject: test ${n}\r\n\r\n`;
  const body = `message ${n} `.repeat(Math.ceil(size / 10)).slice(0, Math.max(0, size - head.length - 2));
  return Buffer.from(`${head}${body}\r\n`);
}
