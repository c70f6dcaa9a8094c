// The configuration schema. postern.example.toml documents every key; keep the two in step.
// Unknown keys are errors (z.strictObject) so that a typo never silently falls back to a default.

import { hostname as osHostname } from 'node:os';
import { z } from 'zod';
import { normalizeDomain } from '../mail/address.js';
import { parseDuration } from '../util/duration.js';
import { parseNetwork } from '../util/network-list.js';

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
  /** Refusals that blame the client (see blamesClient in src/smtp/session.ts) before 421 4.7.0. */
  max_errors: z.number().int().min(1).default(10),
  /** Messages per connection before 421 (0 = unlimited). */
  max_messages_per_connection: z.number().int().min(0).default(0),
  /** Simultaneous connections from one client IP. */
  max_connections_per_ip: z.number().int().min(1).default(50),
  /** Simultaneous connections in all. */
  max_connections: z.number().int().min(1).default(1000),
  /** New connections from one client IP (IPv6: one /64) per minute, SMTP and POP3 each (src/policy/client-rate.ts); 0 = no limit. */
  client_connection_rate: z.number().int().min(0).default(60),
  /** Messages (MAIL FROM) from one client IP per minute in sessions without AUTH; 0 = no limit. */
  client_message_rate: z.number().int().min(0).default(100),
  /**
   * Client networks exempt from max_connections_per_ip and the client rates (not from
   * max_connections). They get no other privilege: relay and AUTH rules are the same for them as
   * for anyone.
   */
  trusted_networks: z
    .array(z.string().refine((n) => parseNetwork(n) !== undefined, 'expected an IP address or network, e.g. "127.0.0.0/8" or "::1/128"'))
    .default(['127.0.0.0/8', '::1/128']),
  /** Seconds to wait for a command (RFC 5321 4.5.3.2.7 server timeout: 5 minutes). */
  command_timeout: seconds.default(300),
  /** Seconds to wait for each chunk of message data (RFC 5321 4.5.3.2.7: 5 minutes). */
  data_timeout: seconds.default(300),
  /** Milliseconds to wait before the greeting; a client that talks first is refused (0 = none). */
  greeting_delay_ms: z.number().int().min(0).max(30_000).default(0),
  /** Seconds that SIGTERM waits for open transactions before closing connections. */
  shutdown_grace: seconds.default(30),
});

/** [pop3]: limits of a POP3 session (src/pop3/). */
const pop3 = z.strictObject({
  /** Longest command line in octets, CRLF included; RFC 2449 4 says 255 for commands, but a SASL
   * response (an OAuth token) needs more. */
  max_command_line: z.number().int().min(255).default(8192),
  /** Refused commands before the session ends. */
  max_errors: z.number().int().min(1).default(10),
  /** Commands in one session before it ends. */
  max_commands: z.number().int().min(10).default(100_000),
  /** Seconds without a command before the session ends (RFC 1939 3: at least 10 minutes). */
  idle_timeout: z.number().min(600).default(600),
});

/** [submission]: what an authenticated account may do (src/policy/sender-identity.ts, rate-limits.ts). */
const submission = z.strictObject({
  /** "strict": MAIL FROM and header From must be addresses the account owns; "any": no check. */
  sender_policy: z.enum(['strict', 'any']).default('strict'),
  /** Messages per account per hour (sliding window); 0 = unlimited. */
  max_messages_per_hour: z.number().int().min(0).default(200),
  /** Recipients per account per day (sliding window); 0 = unlimited. */
  max_recipients_per_day: z.number().int().min(0).default(1000),
  /** Name the authenticated account in the Received header (it reaches every recipient). */
  received_auth: z.boolean().default(false),
});

/** [auth.throttle]: slowing down and locking out password guessing (src/policy/auth-throttle.ts). */
const authThrottle = z.strictObject({
  /** Delay before the first failure reply; it doubles with each further failure. */
  delay_ms: z.number().int().min(0).default(500),
  /** The longest delay before a failure reply. */
  max_delay_ms: z.number().int().min(0).max(60_000).default(8000),
  /** Failures from one client IP (IPv6: one /64) within ip_window that lock the IP out. */
  ip_max_failures: z.number().int().min(1).default(10),
  /** Seconds over which an IP's failures are counted. */
  ip_window: seconds.default(900),
  /** Seconds a locked-out IP gets 454 to AUTH. */
  ip_lockout: seconds.default(900),
  /** Failures for one account, from any IP, within account_window that lock the account. */
  account_max_failures: z.number().int().min(1).default(20),
  account_window: seconds.default(900),
  /** Seconds a locked account cannot log in, even with the right password. */
  account_lockout: seconds.default(900),
  /** IPs and accounts tracked at most (each); the least recently seen are forgotten first. */
  max_tracked: z.number().int().min(100).default(100_000),
});

/** SASL mechanisms Postern implements (src/sasl/), in the order they are offered. */
export const SASL_MECHANISMS = [
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-256',
  'SCRAM-SHA-1-PLUS',
  'SCRAM-SHA-1',
  'PLAIN',
  'LOGIN',
  'CRAM-MD5',
  'OAUTHBEARER',
  'XOAUTH2',
] as const;

/** [auth.oauth]: bearer tokens (JWTs) for OAUTHBEARER (RFC 7628) and XOAUTH2. */
const authOauth = z.strictObject({
  /** The issuer's signing keys as a JWKS document (RFC 7517), re-read when it changes. */
  jwks_file: z.string().min(1),
  /** Required "iss" claim. */
  issuer: z.string().min(1),
  /** Required "aud" claim (one of them, when a list). */
  audience: z.string().min(1),
  /** The claim naming the account; it must equal the user the client names. */
  identity_claim: z.string().min(1).default('email'),
});

/** One [[tls.certificates]] entry (src/tls/server-certificates.ts). */
const tlsCertificate = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
  /** Names it serves ("*.example.test" covers one label); absent: its SAN DNS names, else CN. */
  names: z.array(z.string().min(1)).min(1).optional(),
});

/** A resolver for outbound mail: "127.0.0.1:5353", "[::1]:53", or an address alone (port 53). */
const dnsServer = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\](:\d{1,5})?|[0-9.]+(:\d{1,5})?|[0-9a-fA-F:]+)$/, 'expected "ip", "ip:port" or "[ipv6]:port", e.g. "127.0.0.1:5353"');

/** [relay.mta_sts]: RFC 8461 policies of the domains we send to (src/dns/mta-sts.ts). */
const relayMtaSts = z.strictObject({
  /** Fetch, cache and enforce MTA-STS policies. */
  enabled: z.boolean().default(true),
  /** Port of the policy's HTTPS server (RFC 8461 section 3.3 says 443; tests change it). */
  https_port: z.number().int().min(1).max(65535).default(443),
});

/** A smart host: "host:port", "[host]:port" (IPv6 or literal name), or "host" alone. */
const nextHopHost = z
  .string()
  .regex(/^(\[[^\]\s]+\]|[^\s:\[\]]+)(:\d{1,5})?$/, 'expected "host:port" or "[host]:port", e.g. "smtp.example.net:587"');

/** A transport: "smtp:[host]:port" = that host, "smtp:host:port" = the host's MX (src/delivery/route.ts). */
const TRANSPORT = /^smtp:(\[[^\]\s]+\]|[^\s:\[\]]+)(:\d{1,5})?$/;

/** A duration as "30s", "5m", "1h30m" or seconds (src/util/duration.ts); like durationText below. */
const duration = z.string().refine((t) => parseDuration(t) !== undefined, 'expected a duration such as "30s", "5m" or "4h"');

/** [relay]: delivery to other domains' servers (src/dns/, src/delivery/remote-delivery.ts). */
const relay = z.strictObject({
  /** Resolvers for MX/A/AAAA/TXT lookups; empty: the system's (/etc/resolv.conf). */
  dns_servers: z.array(dnsServer).default([]),
  /** Reuse DNS answers for at most this many seconds (A/AAAA: less when their TTL is); 0 = ask every time. */
  dns_cache_seconds: z.number().int().min(0).default(300),
  mta_sts: relayMtaSts.prefault({}),
  // Next hops and the SMTP client (src/delivery/route.ts, smtp-client.ts, remote-delivery.ts).
  /** Send all outbound mail through this host: "host:port", "[host]:port" or "host"; "" = MX delivery. */
  smarthost: z.union([z.literal(''), nextHopHost]).default(''),
  /** Account for AUTH at the smart host ("" = no AUTH); credentials only ever go over TLS. */
  smarthost_username: z.string().default(''),
  smarthost_password: z.string().default(''),
  /** A file holding the password (first line), instead of smarthost_password. */
  smarthost_password_file: z.string().default(''),
  /** "starttls" (required, port 587 style), "implicit" (TLS from the start, port 465) or "none". */
  smarthost_tls: z.enum(['starttls', 'implicit', 'none']).default('starttls'),
  /** Verify the smart host's certificate against its name (false only for a private relay). */
  smarthost_tls_verify: z.boolean().default(true),
  /** PEM CA certificates trusted besides the system's for verified TLS (smart host, MTA-STS). */
  tls_ca_file: z.string().default(''),
  /** Port of the MX hosts (RFC 5321: 25; tests change it). */
  mx_port: z.number().int().min(1).max(65535).default(25),
  /** Per-domain next hops: "smtp:[host]:port" (that host, no MX lookup) or "smtp:host:port" (host's MX). */
  transports: z.record(z.string().min(1), z.string().regex(TRANSPORT, 'expected "smtp:[host]:port" or "smtp:host:port"')).default({}),
  /** Our name in EHLO; "" = hostname. */
  helo_name: z.string().default(''),
  connect_timeout: duration.default('30s'),
  /** RFC 5321 4.5.3.2 client timeouts. */
  greeting_timeout: duration.default('5m'),
  mail_timeout: duration.default('5m'),
  rcpt_timeout: duration.default('5m'),
  data_init_timeout: duration.default('2m'),
  data_block_timeout: duration.default('3m'),
  data_final_timeout: duration.default('10m'),
  /** How long an idle connection is kept for the next message to the same destination. */
  connection_cache_time: duration.default('5s'),
  /** Simultaneous connections to one destination (domain, transport or smart host). */
  max_connections_per_destination: z.number().int().min(1).default(10),
  /** Simultaneous outbound connections in all. */
  max_connections: z.number().int().min(1).default(100),
});

/** A duration as operators write it: "30s", "5m", "4h", "5d" (src/util/duration.ts). */
export const durationText = z
  .string()
  .refine((t) => parseDuration(t) !== undefined, 'expected a duration such as "30s", "5m", "4h" or "5d"');

/** [queue]: retries, delay warnings and bounces of queued mail (src/queue/). */
const queue = z.strictObject({
  /** Delay before the first retry of a recipient that got a temporary failure; doubles per attempt. */
  retry_first: durationText.default('5m'),
  /** The longest delay between two attempts. */
  retry_max: durationText.default('4h'),
  /** How long a recipient may stay deferred before it is bounced. */
  give_up: durationText.default('5d'),
  /** After this long undelivered, the sender gets one "delayed" DSN (if NOTIFY allows); "0s" = never. */
  delay_warning: durationText.default('4h'),
  /** More Received headers than this and a message is refused as a mail loop (554 5.4.6). */
  max_received_headers: z.number().int().min(1).default(30),
});

/** [dkim]: signing outbound mail from local domains (src/dkim/, RFC 6376). */
const dkim = z.strictObject({
  /** Private keys, one "<domain>.<selector>.key" per domain; "" = <data_dir>/dkim; relative = under data_dir. */
  keys_dir: z.string().default(''),
  /** The selector (s= tag): the key's DNS name is <selector>._domainkey.<domain>. */
  selector: z
    .string()
    .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/, 'expected one DNS label, e.g. "postern" or "2025a"')
    .default('postern'),
  /** Sign outbound mail of domains that have a key. */
  sign: z.boolean().default(true),
});

/** [delivery]: how mail for local mailboxes is stored (src/delivery/local/). */
const delivery = z.strictObject({
  /** "" = straight into the Maildirs; "unix:/path" or "host:port" = hand it to this LMTP server (RFC 2033). */
  lmtp: z
    .union([z.literal(''), z.string().regex(/^(unix:\/.+|(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):\d{1,5})$/, 'expected "unix:/path/to/socket" or "host:port"')])
    .default(''),
});

/** [dovecot]: IMAP served by Dovecot over Postern's Maildirs and accounts (`postern dovecot config`). */
const dovecot = z.strictObject({
  /** Dovecot's IMAP with STARTTLS (RFC 9051); [] = not offered. Production ["0.0.0.0:143"]. */
  imap: z.array(listenAddress).default([]),
  /** Dovecot's IMAP over implicit TLS (RFC 8314); [] = not offered. Production ["0.0.0.0:993"]. */
  imaps: z.array(listenAddress).default([]),
});

/** [clients]: what mail programs and published DNS records are told (src/publish/). */
const clients = z.strictObject({
  /** The server name mail programs connect to; "" = hostname. A [tls] certificate must cover it. */
  host: z.string().default(''),
});

/** [mta_sts]: the RFC 8461 policy Postern serves for its own domains at https://mta-sts.<domain>/. */
const mtaSts = z.strictObject({
  /** "enforce", "testing" (report only) or "none" (withdraw a published policy). */
  mode: z.enum(['enforce', 'testing', 'none']).default('testing'),
  /** How long senders may cache the policy (RFC 8461 3.2: up to 31557600 s). */
  max_age: durationText.default('7d'),
  /** MX host names senders may deliver to ("*.example.com" patterns allowed); [] = hostname. */
  mx: z.array(z.string().min(1)).default([]),
});

/** [tls_rpt]: where senders report TLS failures (RFC 8460); printed by `postern dns`. */
const tlsRpt = z.strictObject({
  /** "mailto:" or "https:" URIs; [] = mailto:postmaster@<domain>. */
  rua: z.array(z.string().regex(/^(mailto:|https:)/, 'expected a "mailto:" or "https:" URI')).default([]),
});

/** [doctor]: what `postern doctor` checks beyond the config itself (src/doctor/). */
const doctor = z.strictObject({
  /** DNS blocklist zones to look our addresses up in (RFC 5782); [] = none. */
  dnsbl_zones: z.array(z.string().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i, 'expected a DNS zone, e.g. "zen.spamhaus.org"')).default(['zen.spamhaus.org']),
});

/** One octet of a DNSBL answer pattern: a number, "[a..b]" or "[a;b;c]" (src/policy/dnsbl-score.ts). */
const answerOctet = String.raw`(\d{1,3}|\[\d{1,3}\.\.\d{1,3}\]|\[\d{1,3}(;\d{1,3})*\])`;
const dnsblSite = new RegExp(String.raw`^[a-z0-9-]+(\.[a-z0-9-]+)+(=${answerOctet}(\.${answerOctet}){3})?(\*-?\d{1,3})?$`, 'i');

/** [screen]: who may talk to the MX listener at all, decided at connect (src/server/client-screen.ts). */
const screen = z.strictObject({
  /** DNS block- and allowlists as zone[=pattern][*weight], postscreen's syntax; [] = none. */
  dnsbl_sites: z
    .array(z.string().regex(dnsblSite, 'expected zone[=pattern][*weight], e.g. "zen.spamhaus.org*3" or "list.dnswl.org=127.0.[0..255].[1..3]*-5"'))
    .default([]),
  /** A client whose weights add up to this is refused (554 5.7.1). */
  dnsbl_threshold: z.number().int().min(1).default(3),
  /** Seconds to wait for the lists; one that has not answered by then counts 0. */
  dnsbl_timeout: z.number().positive().max(30).default(2),
});

/** [sender_auth]: SPF, DKIM, DMARC, ARC and iprev of mail the MX receives (src/sender-auth/). */
const senderAuth = z.strictObject({
  /** Check mail from unauthenticated, untrusted clients of the MX listener. */
  enabled: z.boolean().default(true),
  /** Our name in Authentication-Results (RFC 8601 section 2.5); "" = hostname. */
  authserv_id: z
    .string()
    .regex(/^$|^[!#$%&'*+.0-9A-Z^_`a-z{|}~-]+$/, 'expected a host name such as "mx.example.com" (an RFC 2045 token), or "" for the hostname')
    .default(''),
  /** A DMARC fail under p=reject: "reject" (550 5.7.1 after DATA), "quarantine" (Junk) or "record". */
  dmarc_reject: z.enum(['reject', 'quarantine', 'record']).default('reject'),
  /** A DMARC fail under p=quarantine: "quarantine" (the Junk folder) or "record". */
  dmarc_quarantine: z.enum(['quarantine', 'record']).default('quarantine'),
  /** An SPF fail on its own: "record" (the header and log say so) or "reject" (550 5.7.23). */
  spf_fail: z.enum(['record', 'reject']).default('record'),
  /** Seconds for all the checks of one message; past it, what is missing is temperror. */
  timeout: z.number().positive().max(120).default(20),
  /** Forwarders whose valid ARC seal showing dmarc=pass overrides a DMARC fail (RFC 8617 7.2). */
  arc_trusted_sealers: z.array(z.string().regex(/^[a-z0-9.-]+\.[a-z0-9-]+$/i, 'expected a domain name such as "google.com"')).default([]),
});

/** A sender domain, as written in a config list (IDNs as U-labels or A-labels). */
const senderDomain = z
  .string()
  .refine((d) => d.includes('.') && normalizeDomain(d) !== undefined, 'expected a domain name, e.g. "bank.example"');

/** [greylist]: postgrey's greylisting at RCPT TO on the MX listener (src/policy/greylist.ts). */
const greylist = z.strictObject({
  enabled: z.boolean().default(false),
  /** Seconds a new (client, sender, recipient) triplet must wait before a retry passes (postgrey --delay). */
  delay: z.number().int().min(1).max(86_400).default(300),
  /** Days after which a triplet or client not seen again is forgotten (--max-age). */
  max_age: z.number().positive().max(3650).default(35),
  /** Days a triplet that never passed may still be retried before it starts over (--retry-window). */
  retry_window: z.number().positive().max(3650).default(2),
  /** Successful retries after which a client network is no longer greylisted; 0 = never (--auto-whitelist-clients). */
  auto_whitelist_clients: z.number().int().min(0).default(5),
  /** Group clients by IPv4 /24 and IPv6 /64, as sender farms retry from another host (--lookup-by-subnet). */
  lookup_by_subnet: z.boolean().default(true),
  /** Sender domains (and their subdomains) that skip greylisting when SPF passes for the client. */
  spf_allowlist: z.array(senderDomain).default([]),
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
  /**
   * Worker processes that run the sessions (src/server/workers.ts); 0: one per core. 1 (the
   * default, until the worker mode is faster: docs/benchmarks.md) keeps the server in one process.
   */
  workers: z.number().int().min(0).max(256).default(1),
  /** Separator for plus-addressing: alice+tag@ reaches alice@ ("" turns it off). */
  recipient_delimiter: z.string().max(1).default('+'),
  listen: z
    .strictObject({
      mx: z.array(listenAddress).default(['127.0.0.1:2525']),
      submission: z.array(listenAddress).default(['127.0.0.1:2587']),
      submissions: z.array(listenAddress).default(['127.0.0.1:2465']),
      /** POP3 with STLS (RFC 1939, 2595); production 110. */
      pop3: z.array(listenAddress).default(['127.0.0.1:2110']),
      /** POP3 over implicit TLS (RFC 8314); production 995. */
      pop3s: z.array(listenAddress).default(['127.0.0.1:2995']),
      /** HTTP: client autoconfiguration and the MTA-STS policy (src/web/); production 80. */
      http: z.array(listenAddress).default(['127.0.0.1:2080']),
      /** HTTPS, with the [tls] certificates and SNI; production 443. */
      https: z.array(listenAddress).default(['127.0.0.1:2443']),
      /** Prometheus metrics at GET /metrics (src/server/metrics-service.ts); [] = off. */
      metrics: z.array(listenAddress).default(['127.0.0.1:9425']),
    })
    .prefault({}),
  tls: z
    .strictObject({
      /** PEM certificate chain; absent: a self-signed one is generated into data_dir. */
      cert: z.string().optional(),
      key: z.string().optional(),
      /** More certificates, chosen by the name the client asks for (SNI, RFC 6066 section 3). */
      certificates: z.array(tlsCertificate).default([]),
    })
    .refine((t) => (t.cert === undefined) === (t.key === undefined), {
      message: 'set both tls.cert and tls.key, or neither (for a generated self-signed certificate)',
    })
    // prefault: an absent [tls] is parsed as {}, so certificates gets its default too.
    .prefault({}),
  limits: limits.default(limits.parse({})),
  pop3: pop3.prefault({}),
  submission: submission.default(submission.parse({})),
  auth: z
    .strictObject({
      /** Offer AUTH on the MX listener too (normally only submission ports offer it). */
      mx: z.boolean().default(false),
      /** Mechanisms that may be offered; OAUTHBEARER/XOAUTH2 only with [auth.oauth]. */
      mechanisms: z
        .array(z.enum(SASL_MECHANISMS))
        .default(SASL_MECHANISMS.filter((m) => m !== 'CRAM-MD5')),
      /** Store the password-equivalent CRAM-MD5 secret when a password is set (RFC 2195). */
      cram_md5: z.boolean().default(false),
      /** PBKDF2 iterations for new SCRAM secrets; RFC 7677 section 4: at least 4096. */
      scram_iterations: z.number().int().min(4096).max(10_000_000).default(4096),
      oauth: authOauth.optional(),
      throttle: authThrottle.default(authThrottle.parse({})),
    })
    .refine((a) => a.cram_md5 || !a.mechanisms.includes('CRAM-MD5'), {
      message: 'auth.mechanisms lists "CRAM-MD5" but auth.cram_md5 is false: set cram_md5 = true (see postern.example.toml)',
    })
    // prefault: an absent [auth] is parsed as {}, so every key's own default applies.
    .prefault({}),
  // prefault: an absent [relay] is parsed as {}, so every key's own default applies.
  relay: relay.prefault({}),
  // prefault: an absent [dkim] is parsed as {}.
  dkim: dkim.prefault({}),
  // prefault: an absent [queue] is parsed as {}.
  queue: queue.prefault({}),
  delivery: delivery.prefault({}),
  dovecot: dovecot.prefault({}),
  clients: clients.prefault({}),
  mta_sts: mtaSts.prefault({}),
  tls_rpt: tlsRpt.prefault({}),
  doctor: doctor.prefault({}),
  screen: screen.prefault({}),
  sender_auth: senderAuth.prefault({}),
  greylist: greylist.prefault({}),
  smtp: z
    .strictObject({
      /** Bare LF or CR in message data: "reject" (550 5.6.0) or "normalize" to CRLF. */
      bare_newline: z.enum(['reject', 'normalize']).default('reject'),
    })
    .default({ bare_newline: 'reject' }),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
      /** "auto": pretty when stdout is a terminal, JSON otherwise (files, pipes, journald). */
      format: z.enum(['auto', 'json', 'pretty']).default('auto'),
    })
    .default({ level: 'info', format: 'auto' }),
});

export type Config = z.infer<typeof configSchema>;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw new Error(`bad listen address "${text}"`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}
