// The configuration schema. postern.example.toml documents every key; keep the two in step.
// Unknown keys are errors (z.strictObject) so that a typo never silently falls back to a default.

import { hostname as osHostname } from 'node:os';
import { z } from 'zod';

/** "host:port", "[v6]:port" — validated here, split by parseListenAddress. */
const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):\d{1,5}$/, 'expected "host:port", e.g. "127.0.0.1:2525" or "[::1]:2525"');

const seconds = z.number().positive();

const limits = z.strictObject({
  /** Largest accepted message in octets (announced in EHLO SIZE). */
  max_message_size: z.number().int().positive().default(26_214_400),
  /** Recipients per message; RFC 5321 4.5.3.1.8 requires accepting at least 100. */
  max_recipients: z.number().int().min(1).default(100),
  /** Longest command line in octets including CRLF; RFC 5321 says at least 512. */
  max_command_line: z.number().int().min(512).default(2048),
  /** Longest text line in a message, including CRLF; RFC 5321 4.5.3.1.6 says 1000. */
  max_text_line: z.number().int().min(1000).default(1000),
  /** Failed commands before the session ends with 421 4.7.0. */
  max_errors: z.number().int().min(1).default(10),
  /** Messages per connection before 421 (0 = unlimited). */
  max_messages_per_connection: z.number().int().min(0).default(0),
  /** Simultaneous connections from one client IP. */
  max_connections_per_ip: z.number().int().min(1).default(50),
  /** Simultaneous connections in all. */
  max_connections: z.number().int().min(1).default(1000),
  /** Seconds to wait for a command (RFC 5321 4.5.3.2.7 server timeout: 5 minutes). */
  command_timeout: seconds.default(300),
  /** Seconds to wait for each chunk of message data (RFC 5321 4.5.3.2.7: 5 minutes). */
  data_timeout: seconds.default(300),
  /** Milliseconds to wait before the greeting; a client that talks first is refused (0 = none). */
  greeting_delay_ms: z.number().int().min(0).max(30_000).default(0),
  /** Seconds that SIGTERM waits for open transactions before closing connections. */
  shutdown_grace: seconds.default(30),
});

export const configSchema = z.strictObject({
  /** Our name in the greeting, EHLO reply and Received headers. */
  hostname: z.string().min(1).default(osHostname() || 'localhost'),
  /** Where the store, spool, mailboxes and generated certificate live. */
  data_dir: z.string().min(1).default('./data'),
  /** Where mail to postmaster@ any local domain goes (RFC 5321 4.5.1); empty: root@hostname. */
  postmaster: z.string().default(''),
  /**
   * Unprivileged user to switch to after binding when started as root. Empty: "nobody" (the
   * server logs a warning recommending a dedicated user).
   */
  user: z.string().default(''),
  /** Group to switch to; empty: the user's primary group. */
  group: z.string().default(''),
  /** Separator for plus-addressing: alice+tag@ reaches alice@ ("" turns it off). */
  recipient_delimiter: z.string().max(1).default('+'),
  listen: z
    .strictObject({
      mx: z.array(listenAddress).default(['127.0.0.1:2525']),
      submission: z.array(listenAddress).default(['127.0.0.1:2587']),
      submissions: z.array(listenAddress).default(['127.0.0.1:2465']),
    })
    .default({ mx: ['127.0.0.1:2525'], submission: ['127.0.0.1:2587'], submissions: ['127.0.0.1:2465'] }),
  tls: z
    .strictObject({
      /** PEM certificate chain; absent: a self-signed one is generated into data_dir. */
      cert: z.string().optional(),
      key: z.string().optional(),
    })
    .refine((t) => (t.cert === undefined) === (t.key === undefined), {
      message: 'set both tls.cert and tls.key, or neither (for a generated self-signed certificate)',
    })
    .default({}),
  limits: limits.default(limits.parse({})),
  smtp: z
    .strictObject({
      /** Bare LF or CR in message data: "reject" (550 5.6.11) or "normalize" to CRLF. */
      bare_newline: z.enum(['reject', 'normalize']).default('reject'),
    })
    .default({ bare_newline: 'reject' }),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
      format: z.enum(['json', 'pretty']).default('json'),
    })
    .default({ level: 'info', format: 'json' }),
});

export type Config = z.infer<typeof configSchema>;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw new Error(`bad listen address "${text}"`);
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}
