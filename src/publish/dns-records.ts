// The DNS records a local domain needs, as `postern dns DOMAIN` prints them: where its mail goes
// (MX and the server's addresses), who may send it (SPF, DKIM, DMARC), where mail programs find
// the server (RFC 6186/8314 SRV records, autoconfig, Autodiscover), and how senders learn to
// insist on TLS (MTA-STS, TLS-RPT). Everything comes from the config and the domain's DKIM key,
// so the records say what this server does: a mail service it does not offer gets an SRV record
// with the target "." instead of none, and what cannot be worked out (a missing DKIM key, the
// server's public address behind 0.0.0.0) becomes a note that says what to do.

import { isIP } from 'node:net';
import type { Config } from '../config/schema.js';
import { parseListenAddress } from '../config/schema.js';
import { dkimRecord } from '../dkim/dkim-record.js';
import type { DkimKey } from '../dkim/dkim-key.js';
import { mxMatchesPolicy, parsePolicy } from '../dns/mta-sts-policy.js';
import { splitTxtStrings } from '../dns/txt-strings.js';
import { normalizeDomain } from '../mail/address.js';
import { NetworkList } from '../util/network-list.js';
import { mtaStsPolicy, type MtaStsPolicy } from './mta-sts-policy.js';
import { CLIENT_SERVICES, clientHost, type ClientService, type OfferedService, offeredServices } from './offered-services.js';

/** One hour: caches forget a changed record by then, and resolvers are not asked too often. */
export const RECORD_TTL = 3600;

/** RFC 5321 section 5.1: lower is preferred; 10 leaves room for a backup MX on either side. */
const MX_PREFERENCE = 10;

/** RFC 8461 section 3.3: senders fetch the policy over HTTPS on the default port. */
const HTTPS_PORT = 443;

/**
 * Listen addresses that say nothing about the address the world reaches the server at: "any"
 * addresses, loopback, link-local, private (RFC 1918, RFC 4193) and shared (RFC 6598) ranges.
 */
const UNPUBLISHABLE = new NetworkList([
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '::/128',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
]);

/** A record's data; field names are those of the RFCs that define each type (RFC 1035, 2782, 3596). */
export type RecordData =
  | { readonly type: 'A' | 'AAAA'; readonly address: string }
  | { readonly type: 'MX'; readonly preference: number; readonly exchange: string }
  | { readonly type: 'TXT'; readonly strings: readonly string[] }
  | { readonly type: 'SRV'; readonly priority: number; readonly weight: number; readonly port: number; readonly target: string }
  | { readonly type: 'CNAME'; readonly target: string };

export type PublishedRecord = RecordData & {
  /** The owner name: absolute, without the final dot, lower case, A-labels. */
  readonly name: string;
  readonly ttl: number;
  /** What the record is for, in a sentence for people. */
  readonly comment: string;
};

export interface DomainRecords {
  readonly domain: string;
  readonly records: readonly PublishedRecord[];
  /** What the operator must do or know that no record says: a missing key, a mismatch, a name to resolve. */
  readonly notes: readonly string[];
  /** The MTA-STS policy Postern serves, and where; absent when nothing serves HTTPS. */
  readonly mtaSts?: { readonly url: string; readonly policy: MtaStsPolicy };
}

/**
 * The records of `domain` (normalized, local); `dkimKey` is the key that signs its mail, if it
 * has one. `addresses` are the server's public addresses when [listen] cannot tell them (0.0.0.0,
 * behind NAT); by default, those [listen] names.
 */
export function domainRecords(
  config: Config,
  domain: string,
  dkimKey: DkimKey | undefined,
  addresses: readonly string[] = publicAddresses(config),
): DomainRecords {
  const records: PublishedRecord[] = [];
  const notes: string[] = [];
  const add = (record: PublishedRecord): void => void records.push(record);
  const host = hostName(config.hostname);
  const client = hostName(clientHost(config));
  for (const name of new Set([host, client])) {
    if (!name.includes('.')) {
      notes.push(
        `"${name}" is not a fully qualified host name, so the MX and SRV records cannot reach it; ` +
          "set hostname (and [clients] host) to the server's name in DNS",
      );
    }
  }

  add(rr(domain, { type: 'MX', preference: MX_PREFERENCE, exchange: host }, `Mail for ${domain} comes to this server (RFC 5321 section 5.1).`));
  addressRecords(addresses, [...new Set([host, client])], add, notes);

  add(txt(domain, spfText(config), spfComment(config, domain)));
  if (dkimKey === undefined) {
    notes.push(
      `${domain} has no DKIM key (selector "${config.dkim.selector}"), so its mail goes out unsigned and the DKIM record ` +
        `is missing: create one with \`postern dkim generate ${domain}\`, then run \`postern dns ${domain}\` again`,
    );
  } else {
    const dkim = dkimRecord(dkimKey);
    const algorithm = dkimKey.algorithm === 'rsa' ? 'RSA' : 'Ed25519';
    const comment = `DKIM (RFC 6376): the public half of the ${algorithm} key that signs mail from ${domain}, selector "${dkimKey.selector}".`;
    add(rr(dkim.name, { type: 'TXT', strings: dkim.strings }, comment));
    if (!config.dkim.sign) notes.push(`[dkim] sign = false: the DKIM key is published, but mail from ${domain} goes out unsigned`);
  }
  add(
    txt(
      `_dmarc.${domain}`,
      `v=DMARC1; p=none; rua=mailto:postmaster@${domain}`,
      `DMARC (RFC 7489): p=none asks receivers to report, not to act. Read the aggregate reports that reach ` +
        `postmaster@${domain}; once they show your mail passing SPF and DKIM, change to p=quarantine, later p=reject.`,
    ),
  );

  srvRecords(config, domain, client, add);
  webRecords(config, domain, client, add, notes);
  const mtaSts = mtaStsRecords(config, domain, host, add, notes);

  add(
    txt(
      `_smtp._tls.${domain}`,
      `v=TLSRPTv1; rua=${reportUris(config, domain).join(',')}`,
      `TLS-RPT (RFC 8460): where senders report failed TLS sessions with the MX of ${domain}.`,
    ),
  );
  return mtaSts === undefined ? { domain, records, notes } : { domain, records, notes, mtaSts };
}

/**
 * SPF (RFC 7208): "mx" allows the hosts the MX record names, which is this server, since it
 * sends from where it receives; "-all" (section 5.1) says nothing else sends for the domain. A
 * smart host relays all outbound mail, so it is allowed by name, or by address when given one.
 */
function spfText(config: Config): string {
  const smarthost = smarthostName(config.relay.smarthost);
  if (smarthost === undefined) return 'v=spf1 mx -all';
  const family = isIP(smarthost);
  const mechanism = family === 4 ? `ip4:${smarthost}` : family === 6 ? `ip6:${smarthost}` : `a:${smarthost}`;
  return `v=spf1 mx ${mechanism} -all`;
}

function spfComment(config: Config, domain: string): string {
  const base = `SPF (RFC 7208): "mx" lets the MX host, this server, send mail from ${domain}; "-all" says no other host may.`;
  const smarthost = smarthostName(config.relay.smarthost);
  if (smarthost === undefined) return base;
  return (
    `${base} Outbound mail leaves through the smart host ${smarthost}, so its addresses are allowed too; ` +
    'if its provider documents an SPF "include:", use that instead.'
  );
}

/** The host of [relay] smarthost ("host", "host:port", "[literal]:port"); undefined when unset. */
function smarthostName(smarthost: string): string | undefined {
  if (smarthost === '') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]+))/.exec(smarthost);
  return (m?.[1] ?? m?.[2] ?? smarthost).toLowerCase();
}

/**
 * RFC 6186 section 3 and RFC 8314 section 5.1, one record per service. Priorities rank every
 * access service against the others (RFC 6186 section 3.4: IMAP and POP3 alike), implicit TLS
 * first (RFC 8314 section 5.1); submission is ranked on its own. A service that is not offered
 * gets "0 0 0 .", which tells a mail program it is decidedly not available (RFC 2782, RFC 6186
 * section 4) instead of leaving it to guess ports.
 */
function srvRecords(config: Config, domain: string, client: string, add: (r: PublishedRecord) => void): void {
  const offered = new Map<string, OfferedService>(offeredServices(config).map((s) => [s.srv, s]));
  const rank = { access: 0, submission: 0 };
  for (const service of CLIENT_SERVICES) {
    const group = service.protocol === 'smtp' ? 'submission' : 'access';
    const priority = 10 * rank[group]++;
    const name = `${service.srv}.${domain}`;
    const found = offered.get(service.srv);
    if (found === undefined) {
      const comment = `No ${describe(service)} here: "." tells mail programs not to try it (RFC 6186 section 4).`;
      add(rr(name, { type: 'SRV', priority: 0, weight: 0, port: 0, target: '.' }, comment));
    } else {
      const what = describe(service);
      const comment = `${what.charAt(0).toUpperCase()}${what.slice(1)}, for mail programs that look the server up (RFC 6186).`;
      add(rr(name, { type: 'SRV', priority, weight: 1, port: found.port, target: client }, comment));
    }
  }
}

function describe(service: ClientService): string {
  const protocol = { imap: 'IMAP', pop3: 'POP3', smtp: 'submission' }[service.protocol];
  if (service.security === 'tls') return `${protocol} over TLS (RFC 8314)`;
  return `${protocol} with ${service.protocol === 'pop3' ? 'STLS' : 'STARTTLS'}`;
}

/**
 * The names mail programs fetch their settings from over HTTP(S), which Postern's web listener
 * serves: Thunderbird's autoconfig (http or https://autoconfig.<domain>/) and Outlook's
 * Autodiscover (https only, found through https://autodiscover.<domain>/ or its SRV record).
 */
function webRecords(config: Config, domain: string, client: string, add: (r: PublishedRecord) => void, notes: string[]): void {
  const https = firstPort(config.listen.https);
  if (https === undefined && firstPort(config.listen.http) === undefined) {
    notes.push('[listen] http and https are off, so nothing serves autoconfig, Autodiscover or the MTA-STS policy: no records for them');
    return;
  }
  const autoconfig = `Thunderbird and others fetch their settings from autoconfig.${domain}, which Postern serves.`;
  add(rr(`autoconfig.${domain}`, { type: 'CNAME', target: client }, autoconfig));
  if (https === undefined) {
    notes.push('[listen] https is off, so nothing serves Autodiscover or the MTA-STS policy: their records are left out');
    return;
  }
  const autodiscover = `Outlook fetches its settings from https://autodiscover.${domain}/ (a [tls] certificate must cover the name).`;
  add(rr(`autodiscover.${domain}`, { type: 'CNAME', target: client }, autodiscover));
  const srv = `Outlook's Autodiscover at ${client}, for clients that look for it by SRV.`;
  add(rr(`_autodiscover._tcp.${domain}`, { type: 'SRV', priority: 0, weight: 1, port: https, target: client }, srv));
  if (https !== HTTPS_PORT) {
    notes.push(
      `[listen] https is on port ${https}, but senders fetch the MTA-STS policy and Outlook its settings from port ${HTTPS_PORT}: ` +
        `listen there, or forward port ${HTTPS_PORT} to ${https}`,
    );
  }
}

/** RFC 8461 section 3: the TXT record that announces the policy, and the host name that serves it. */
function mtaStsRecords(
  config: Config,
  domain: string,
  host: string,
  add: (r: PublishedRecord) => void,
  notes: string[],
): DomainRecords['mtaSts'] {
  if (firstPort(config.listen.https) === undefined) return undefined;
  const policy = mtaStsPolicy(config);
  const url = `https://mta-sts.${domain}/.well-known/mta-sts.txt`;
  const served =
    `MTA-STS (RFC 8461 section 3.3): senders fetch the policy from ${url}, which Postern serves ` +
    `(a [tls] certificate must cover mta-sts.${domain}).`;
  add(rr(`mta-sts.${domain}`, { type: 'CNAME', target: host }, served));
  const announced = 'MTA-STS (RFC 8461 section 3.1): a policy exists; its id changes whenever the policy does, so senders fetch it again.';
  add(txt(`_mta-sts.${domain}`, `v=STSv1; id=${policy.id}`, announced));
  // Read the policy as a sender would: the MX record's host must match it, or senders that
  // enforce it refuse to deliver (RFC 8461 section 4.1).
  const parsed = parsePolicy(policy.text);
  if (parsed.ok && parsed.policy.mode !== 'none' && !mxMatchesPolicy({ ...parsed.policy, id: policy.id }, host)) {
    notes.push(
      `the MX host ${host} matches none of [mta_sts] mx (${parsed.policy.mx.join(', ')}): senders that apply the policy ` +
        'will not deliver to it; add it to [mta_sts] mx',
    );
  }
  return { url, policy };
}

/**
 * [tls_rpt] rua, or postmaster@<domain>. RFC 8460 section 3: URIs are separated by commas, so a
 * comma or "!" inside one is percent-encoded, and so is ";", which would end the field.
 */
function reportUris(config: Config, domain: string): string[] {
  const uris = config.tls_rpt.rua.length > 0 ? config.tls_rpt.rua : [`mailto:postmaster@${domain}`];
  return uris.map((uri) => uri.replace(/[,!;\s]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`));
}

/**
 * The server's own names need A/AAAA records. Listening on a public address says which; "any"
 * addresses and private ones do not, and then a note names what must resolve to the server.
 */
function addressRecords(addresses: readonly string[], names: readonly string[], add: (r: PublishedRecord) => void, notes: string[]): void {
  if (addresses.length === 0) {
    notes.push(
      `${names.join(' and ')} must have A (and AAAA) records with this server's public addresses; [listen] names none ` +
        '(0.0.0.0, [::], loopback and private addresses do not tell them)',
    );
    return;
  }
  for (const name of names) {
    const comment = `${name} is this server, at the addresses [listen] names (skip those already published).`;
    for (const address of addresses) add(rr(name, { type: isIP(address) === 4 ? 'A' : 'AAAA', address }, comment));
  }
}

/** The public addresses the listeners of the config name, IPv4 first; none for "any", loopback and private ones. */
export function publicAddresses(config: Config): string[] {
  const lists = [
    config.listen.mx,
    config.listen.submission,
    config.listen.submissions,
    config.listen.pop3,
    config.listen.pop3s,
    config.listen.http,
    config.listen.https,
    config.dovecot.imap,
    config.dovecot.imaps,
  ];
  const addresses = new Set<string>();
  for (const list of lists) {
    for (const listen of list) {
      const { host } = parseListenAddress(listen);
      if (isIP(host) !== 0 && !UNPUBLISHABLE.contains(host)) addresses.add(host.toLowerCase());
    }
  }
  return [...addresses].sort((a, b) => isIP(a) - isIP(b) || a.localeCompare(b));
}

/** Keys in the order scripts and people read them: name, type, ttl, the data, the comment. */
function rr(name: string, data: RecordData, comment: string): PublishedRecord {
  return Object.assign({ name, type: data.type, ttl: RECORD_TTL }, data, { comment });
}

function txt(name: string, text: string, comment: string): PublishedRecord {
  return rr(name, { type: 'TXT', strings: splitTxtStrings(text) }, comment);
}

function firstPort(listen: readonly string[]): number | undefined {
  const first = listen[0];
  return first === undefined ? undefined : parseListenAddress(first).port;
}

/** A configured host name as DNS holds it: lower case, A-labels, no final dot. */
function hostName(name: string): string {
  return normalizeDomain(name) ?? name.toLowerCase();
}
