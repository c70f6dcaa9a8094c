// What the HTTP(S) listener answers: a fixed table of paths, each with the methods that make
// sense for it, and a handler from the request's facts (host, query, body, whether it came over
// TLS) to an answer. No path maps to a file, so there is nothing to traverse: a path is one of
// these strings exactly, byte for byte (not percent-decoded, not normalized), or it is 404.
//
// The domain a client asks about must be one of ours (the store's local domains), else 404;
// whether the address's user exists is never looked at, so the answers reveal no accounts.

import type { Config } from '../config/schema.js';
import { normalizeDomain } from '../mail/address.js';
import { mtaStsPolicy } from '../publish/mta-sts-policy.js';
import type { DirectoryStore } from '../store/store.js';
import { autoconfigXml } from './autoconfig.js';
import { autodiscoverError, autodiscoverResponse, parseAutodiscoverRequest, RESPONSE_SCHEMA } from './autodiscover.js';
import { clientSettings, type CertificateCoverage } from './client-settings.js';
import { parseClientAddress, type ClientAddress } from './email-address.js';
import { mobileconfig } from './mobileconfig.js';

export interface WebRequest {
  readonly method: string;
  /** The Host header's name, normalized (lower case, A-labels, no port); undefined if absent or not a name. */
  readonly host: string | undefined;
  readonly query: URLSearchParams;
  /** Came over the https listener. */
  readonly secure: boolean;
  /** Read only for routes that take one. */
  readonly body: Buffer | undefined;
}

export interface WebAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Route {
  readonly methods: readonly string[];
  /** The route reads a request body (POST), limited by the service. */
  readonly takesBody: boolean;
  answer(request: WebRequest): Promise<WebAnswer>;
}

export interface SiteParts {
  readonly config: Config;
  readonly directory: Pick<DirectoryStore, 'isLocalDomain'>;
  readonly certificates: CertificateCoverage;
}

/** The Apple profile's URL, chosen here: GET /apple/mobileconfig?emailaddress=alice@example.com. */
export const MOBILECONFIG_PATH = '/apple/mobileconfig';
export const MTA_STS_PATH = '/.well-known/mta-sts.txt';
const AUTOCONFIG_PATHS = ['/.well-known/autoconfig/mail/config-v1.1.xml', '/mail/config-v1.1.xml'];
/** Outlook varies the case ("/Autodiscover/Autodiscover.xml"): compared lower-cased. */
const AUTODISCOVER_PATH = '/autodiscover/autodiscover.xml';

const GET = ['GET', 'HEAD'];

export class Site {
  private readonly policy: string;

  constructor(private readonly parts: SiteParts) {
    this.policy = mtaStsPolicy(parts.config).text;
  }

  /** The route for a path, or undefined (404). */
  route(path: string): Route | undefined {
    if (AUTOCONFIG_PATHS.includes(path)) return { methods: GET, takesBody: false, answer: (r) => this.autoconfig(r) };
    if (path.toLowerCase() === AUTODISCOVER_PATH) return { methods: ['POST'], takesBody: true, answer: (r) => this.autodiscover(r) };
    if (path === MOBILECONFIG_PATH) return { methods: GET, takesBody: false, answer: (r) => this.mobileconfig(r) };
    if (path === MTA_STS_PATH) return { methods: GET, takesBody: false, answer: (r) => this.mtaSts(r) };
    return undefined;
  }

  /**
   * Thunderbird asks https://autoconfig.<domain>/mail/config-v1.1.xml, then
   * https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml, then both over http, each with
   * ?emailaddress= (unless its user turned that off): the address names the domain, else the Host.
   */
  private async autoconfig(request: WebRequest): Promise<WebAnswer> {
    const address = this.queryAddress(request);
    if (address === 'invalid') return BAD_ADDRESS;
    const domain = address?.domain ?? hostDomain(request.host, 'autoconfig.');
    if (domain === undefined || !(await this.isLocal(domain))) return NOT_FOUND;
    const settings = clientSettings(this.parts.config, this.parts.certificates);
    if (!settings.ok) return UNAVAILABLE;
    return { status: 200, contentType: 'application/xml; charset=utf-8', body: autoconfigXml(domain, settings) };
  }

  private async autodiscover(request: WebRequest): Promise<WebAnswer> {
    const hostname = this.parts.config.hostname;
    const xml = (status: number, body: string): WebAnswer => ({ status, contentType: 'application/xml; charset=utf-8', body });
    const parsed = parseAutodiscoverRequest(request.body ?? Buffer.alloc(0));
    if (!parsed.ok) return xml(400, autodiscoverError(600, hostname));
    const address = parseClientAddress(parsed.emailAddress);
    if (address === undefined) return xml(400, autodiscoverError(600, hostname));
    if (!(await this.isLocal(address.domain))) return NOT_FOUND;
    // Another schema (mobilesync for ActiveSync, Exchange's own) is a provider we are not.
    if (parsed.acceptableSchema !== RESPONSE_SCHEMA) return xml(200, autodiscoverError(601, hostname));
    const settings = clientSettings(this.parts.config, this.parts.certificates);
    if (!settings.ok) return UNAVAILABLE;
    return xml(200, autodiscoverResponse(address.address, settings));
  }

  private async mobileconfig(request: WebRequest): Promise<WebAnswer> {
    const address = this.queryAddress(request);
    if (address === 'invalid' || address === undefined) return BAD_ADDRESS;
    if (!(await this.isLocal(address.domain))) return NOT_FOUND;
    const settings = clientSettings(this.parts.config, this.parts.certificates);
    if (!settings.ok) return UNAVAILABLE;
    return {
      status: 200,
      contentType: 'application/x-apple-aspen-config',
      body: mobileconfig(address, settings),
      headers: { 'content-disposition': `attachment; filename="${address.domain}.mobileconfig"` },
    };
  }

  /**
   * RFC 8461 3.3: the policy is served only over HTTPS, from mta-sts.<domain>, as text/plain.
   * Over http it does not exist here, and a sender must not take it from there anyway.
   */
  private async mtaSts(request: WebRequest): Promise<WebAnswer> {
    if (!request.secure) return NOT_FOUND;
    const host = request.host;
    if (host === undefined || !host.startsWith('mta-sts.')) return NOT_FOUND;
    if (!(await this.isLocal(host.slice('mta-sts.'.length)))) return NOT_FOUND;
    return { status: 200, contentType: 'text/plain', body: this.policy };
  }

  /** ?emailaddress=: absent, one valid address, or 'invalid' (malformed, or given twice). */
  private queryAddress(request: WebRequest): ClientAddress | 'invalid' | undefined {
    const values = request.query.getAll('emailaddress');
    if (values.length === 0) return undefined;
    if (values.length > 1) return 'invalid';
    return parseClientAddress(values[0] as string) ?? 'invalid';
  }

  private isLocal(domain: string): Promise<boolean> {
    return this.parts.directory.isLocalDomain(domain);
  }
}

/** The domain a Host names: itself, or with `prefix` ("autoconfig.") taken off. */
function hostDomain(host: string | undefined, prefix: string): string | undefined {
  if (host === undefined) return undefined;
  return normalizeDomain(host.startsWith(prefix) ? host.slice(prefix.length) : host);
}

const text = (status: number, body: string): WebAnswer => ({ status, contentType: 'text/plain; charset=utf-8', body: `${body}\n` });
const NOT_FOUND = text(404, 'Not found');
const BAD_ADDRESS = text(400, 'emailaddress must be one mail address, such as alice@example.com');
const UNAVAILABLE = text(503, 'Mail client configuration is not available on this server');
