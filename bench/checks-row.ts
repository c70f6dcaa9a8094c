// The inbound-checks row of `npm run bench`: what checking who sent a message costs. smtp-source
// drives three servers on their MX ports at 100 sessions, 1 KiB, reused connections:
//   - Postfix as Debian ships it (no SPF, DKIM, DMARC, DNSBL or greylisting);
//   - Postern with every inbound check off;
//   - Postern with every check on: DNS lists at connect, greylisting (the client's triplet has
//     passed once before the runs, so each message costs a lookup, not a deferral), per-client
//     rate limits (high enough never to trip), and SPF, DKIM, DMARC, ARC and iprev after DATA.
// The loopback DNS server answers every lookup, and Postern's answer cache is warm after the
// warm-up run, as it would be for a busy MX that hears from the same senders again and again.
// The rounds are interleaved (Postfix, off, on; then rotated) so that a slow spell of the disk
// falls on all three, and the row reports the median of each and the spread of the ratios.
//
// smtp-source sends an unsigned message, so the DKIM step finds no signature to verify; DMARC
// passes on the aligned SPF pass of sender@client.test. What the row measures is the cost of the
// lookups, the header parsing and the Authentication-Results header, not of an RSA verification.

import { readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { parse, stringify } from 'smol-toml';
import { TestDnsServer } from '../test/support/dns-server.js';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { freePort, TestPostfix } from '../test/support/postfix.js';
import { drain, formatRatio, measure, median, ratioSpread, type Contender, type Row, type Spread } from './contender.js';

/** smtp-source's fixed sender, HELO and client address (bench/smtp-source.ts). */
const CLIENT_DOMAIN = 'client.test';
const CLIENT_SENDER = `sender@${CLIENT_DOMAIN}`;
const CLIENT_IP = '127.0.0.1';
const DOMAIN = 'checks.test';
const RECIPIENT = `bench@${DOMAIN}`;
const BLOCKLIST = 'bl.bench.test';
const ALLOWLIST = 'wl.bench.test';
const ROUNDS = 3;
/** Greylisting's delay in the bench: the warm-up waits it out once. */
const GREYLIST_DELAY_S = 1;

/** One Postern of the row: its instance, and its server once started. */
interface ChecksSide {
  readonly postern: PosternInstance;
  server?: PosternProcess;
}

/** What the row started, for the caller's cleanup whatever happens. */
export interface ChecksRowStarted {
  postfix?: TestPostfix;
  dns?: TestDnsServer;
  off?: ChecksSide;
  on?: ChecksSide;
}

export interface ChecksRowResult {
  readonly messages: number;
  /** Median messages/s of each contender over the rounds. */
  readonly postfix: number;
  readonly off: number;
  readonly on: number;
  /** Per round, on / off and on / Postfix: their lowest and highest. */
  readonly onOverOff: Spread;
  readonly onOverPostfix: Spread;
}

/** Starts a Postfix and two Postern instances for one domain, and runs the row against them. */
export async function measureChecksRow(scale: number, started: ChecksRowStarted): Promise<ChecksRowResult> {
  const postfix = await TestPostfix.start({ hostname: 'checks-postfix.localdomain', domains: [DOMAIN] });
  started.postfix = postfix;
  const recipient = RECIPIENT;
  const domain = DOMAIN;
  const dns = await TestDnsServer.start();
  started.dns = dns;
  publishClientRecords(dns);

  const off: ChecksSide = { postern: await configurePostern('bench-off.localdomain', domain, recipient, undefined) };
  started.off = off;
  const offServer = (off.server = await off.postern.start());
  const on: ChecksSide = { postern: await configurePostern('bench-on.localdomain', domain, recipient, dns.address) };
  started.on = on;
  const onServer = (on.server = await on.postern.start());

  const contenders: Contender[] = [
    { name: 'postfix-checks', port: postfix.port, maildirNew: postfix.maildirNew, queued: () => postfix.queued() },
    { name: 'postern-off', port: offServer.port('mx'), maildirNew: off.postern.maildirNew(recipient), queued: () => 0 },
    { name: 'postern-on', port: onServer.port('mx'), maildirNew: on.postern.maildirNew(recipient), queued: () => 0 },
  ];
  // The first message of smtp-source's triplet is greylisted; its retry after the delay passes,
  // and from then on the triplet is known. smtp-source gives up on a 4xx, so a client that
  // retries does this once, before any run.
  await passGreylisting(onServer.port('mx'), recipient);
  await drain(contenders[2]!, 1);

  const messages = Math.max(200, Math.round(3000 * scale));
  const row: Row = { sessions: 100, size: 1024, reuse: true, messages };
  // Warm-up: daemons spawned, hot paths compiled, Postern's DNS cache filled.
  for (const c of contenders) await measure(c, { ...row, messages: Math.max(200, Math.round(row.messages / 3)) }, recipient);

  const rates: Record<string, number[]> = { 'postfix-checks': [], 'postern-off': [], 'postern-on': [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate who goes first, so no contender always runs right after another's deliveries.
    const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]!);
    for (const c of order) rates[c.name]!.push(await measure(c, row, recipient));
  }
  return {
    messages,
    postfix: median(rates['postfix-checks']!),
    off: median(rates['postern-off']!),
    on: median(rates['postern-on']!),
    onOverOff: ratioSpread(rates['postern-on']!, rates['postern-off']!),
    onOverPostfix: ratioSpread(rates['postern-on']!, rates['postfix-checks']!),
  };
}

export function printChecksRow(r: ChecksRowResult): void {
  console.log('');
  console.log(`Inbound checks: 100 sessions, 1 KiB, reused connections, smtp-source on the MX port, median of ${ROUNDS} interleaved rounds`);
  console.log('  on = DNS lists at connect, greylisting, client rate limits, SPF + DKIM + DMARC + ARC + iprev after DATA (loopback DNS, cache warm)');
  const widths = [9, 18, 22, 21, 14, 20];
  const head = ['messages', 'postfix_msgs_per_s', 'postern_off_msgs_per_s', 'postern_on_msgs_per_s', 'on/off', 'on/postfix'];
  console.log(head.map((c, i) => c.padStart(widths[i]!)).join('  '));
  const cells = [
    String(r.messages),
    r.postfix.toFixed(1),
    r.off.toFixed(1),
    r.on.toFixed(1),
    formatRatio(r.on / r.off, r.onOverOff),
    formatRatio(r.on / r.postfix, r.onOverPostfix),
  ];
  console.log(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
  console.log(`target (checks on no slower than Postfix without them): ${r.on >= r.postfix ? 'met' : 'not met'}`);
}

/** SPF, DMARC and forward-confirmed reverse DNS for smtp-source's sender and address; lists that do not list it. */
function publishClientRecords(dns: TestDnsServer): void {
  const ttl = 3600;
  dns.set(CLIENT_DOMAIN, [
    { type: 'TXT', strings: [`v=spf1 ip4:${CLIENT_IP} -all`], ttl },
    { type: 'A', address: CLIENT_IP, ttl },
  ]);
  dns.set(`_dmarc.${CLIENT_DOMAIN}`, [{ type: 'TXT', strings: ['v=DMARC1; p=reject'], ttl }]);
  dns.set('1.0.0.127.in-addr.arpa', [{ type: 'PTR', target: CLIENT_DOMAIN, ttl }]);
  // The zones exist, but 127.0.0.1 is in neither (NXDOMAIN, as a real list answers).
  dns.set(BLOCKLIST, [{ type: 'TXT', strings: ['bench blocklist'], ttl }]);
  dns.set(ALLOWLIST, [{ type: 'TXT', strings: ['bench allowlist'], ttl }]);
}

/** A Postern for `domain`, checks on when it is given a DNS server, off otherwise. */
async function configurePostern(hostname: string, domain: string, recipient: string, dnsServer: string | undefined): Promise<PosternInstance> {
  const postern = new PosternInstance({
    hostname,
    mxPort: await freePort(),
    submission: false,
    logLevel: 'warn',
    limits: { max_connections_per_ip: 1000 },
  });
  await postern.cliOk(['domain', 'add', domain]);
  await postern.addUser(recipient);
  const config = parse(readFileSync(postern.configPath, 'utf8')) as Record<string, Record<string, unknown>>;
  const sections = dnsServer === undefined ? checksOff() : checksOn(dnsServer);
  for (const [name, keys] of Object.entries(sections)) config[name] = { ...config[name], ...keys };
  writeFileSync(postern.configPath, stringify(config));
  return postern;
}

function checksOff(): Record<string, Record<string, unknown>> {
  return {
    // Not trusted, so that the only difference from "on" is the checks themselves: the client
    // rates (on by default) are off too.
    limits: { trusted_networks: [], client_connection_rate: 0, client_message_rate: 0 },
    sender_auth: { enabled: false },
  };
}

function checksOn(dnsServer: string): Record<string, Record<string, unknown>> {
  return {
    // Loopback is trusted by default, and trusted clients are not checked: make it a stranger.
    limits: { trusted_networks: [], client_connection_rate: 1_000_000, client_message_rate: 1_000_000 },
    // Cache for an hour, as in production (the test helper turns the cache off).
    relay: { dns_servers: [dnsServer], dns_cache_seconds: 3600 },
    screen: { dnsbl_sites: [`${BLOCKLIST}*3`, `${ALLOWLIST}*-1`] },
    sender_auth: { enabled: true },
    greylist: { enabled: true, delay: GREYLIST_DELAY_S },
  };
}

/** Sends smtp-source's triplet once, is greylisted, waits the delay, and is let through. */
async function passGreylisting(port: number, recipient: string): Promise<void> {
  const transport = nodemailer.createTransport({ host: CLIENT_IP, port, secure: false, ignoreTLS: true, name: CLIENT_DOMAIN });
  const mail = { envelope: { from: CLIENT_SENDER, to: [recipient] }, raw: `From: <${CLIENT_SENDER}>\r\nTo: <${recipient}>\r\nSubject: greylist warm-up\r\n\r\nwarm-up\r\n` };
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await transport.sendMail(mail);
        return;
      } catch (err) {
        const code = (err as { responseCode?: number }).responseCode;
        if (code === undefined || code < 400 || code >= 500 || attempt >= 10) throw err;
        await sleep(GREYLIST_DELAY_S * 1000 + 200);
      }
    }
  } finally {
    transport.close();
  }
}
