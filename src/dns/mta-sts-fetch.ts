// Fetching an MTA-STS policy file: RFC 8461 section 3.3. GET
// https://mta-sts.<domain>/.well-known/mta-sts.txt, where the name is resolved with our own DNS
// client (the resolvers of [relay] dns_servers) and the certificate must be valid for
// mta-sts.<domain>: the policy is only as trustworthy as that certificate. Redirects are not
// followed, the media type must be text/plain, and the body is limited in size and time.

import { request } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { DnsClient } from './resolver.js';

export interface PolicyFetchOptions {
  readonly dns: DnsClient;
  /** 443 in the real world (section 3.3); tests use an ephemeral port. */
  readonly port: number;
  /** Trust anchors replacing the system's CAs; undefined: the system's. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[] | undefined;
  /** For the whole fetch, connection to last byte. */
  readonly timeoutMs: number;
  /** Ends the fetch at once wherever it is (the server is stopping). */
  readonly signal?: AbortSignal | undefined;
}

export class PolicyFetchError extends Error {
  override readonly name = 'PolicyFetchError';
}

/** Section 3.3 suggests 64 KiB as the largest policy a sender need read. */
export const MAX_POLICY_BYTES = 64 * 1024;
/** Addresses of the policy host tried at most, in order. */
const MAX_ADDRESSES = 4;
const POLICY_PATH = '/.well-known/mta-sts.txt';

/** The policy file's text; throws PolicyFetchError saying what went wrong. */
export async function fetchPolicyText(domain: string, opts: PolicyFetchOptions): Promise<string> {
  const host = `mta-sts.${domain}`;
  const addresses = await policyHostAddresses(host, opts.dns);
  let lastError: unknown;
  for (const address of addresses.slice(0, MAX_ADDRESSES)) {
    if (opts.signal?.aborted) throw new PolicyFetchError(`fetch from ${host} stopped: Postern is shutting down`);
    try {
      return await fetchFrom(address, host, opts);
    } catch (err) {
      // A refused or unreachable address: the next may work. Anything the server said is final.
      if (!(err instanceof UnreachableError)) throw err;
      lastError = err.cause;
    }
  }
  throw new PolicyFetchError(`cannot connect to ${host}: ${describe(lastError)}`);
}

async function policyHostAddresses(host: string, dns: DnsClient): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([dns.a(host), dns.aaaa(host)]);
  const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (addresses.length > 0) return addresses;
  const failure = [v4, v6].find((r) => r.status === 'rejected');
  throw new PolicyFetchError(`cannot resolve ${host}: ${describe(failure?.status === 'rejected' ? failure.reason : undefined)}`);
}

/** A connection that never reached the HTTP exchange. */
class UnreachableError extends Error {}

function fetchFrom(address: string, host: string, opts: PolicyFetchOptions): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let connected = false;
    const req = request({
      host: address,
      port: opts.port,
      path: POLICY_PATH,
      method: 'GET',
      // RFC 9110 section 7.2: the port is part of Host when it is not the scheme's default.
      headers: { host: opts.port === 443 ? host : `${host}:${opts.port}`, accept: 'text/plain' },
      servername: host,
      // The connection goes to an address we resolved, so name the host we must verify.
      checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(host, cert),
      ca: opts.ca as string | Buffer | (string | Buffer)[] | undefined,
      rejectUnauthorized: true,
      agent: false,
      signal: opts.signal,
    });
    const timer = setTimeout(() => req.destroy(new PolicyFetchError(`no policy from ${host} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const fail = (err: unknown) => {
      clearTimeout(timer);
      reject(err);
    };
    req.on('socket', (socket) => socket.once('connect', () => (connected = true)));
    req.on('error', (err) => {
      if (err instanceof PolicyFetchError) fail(err);
      else if (opts.signal?.aborted) fail(new PolicyFetchError(`fetch from ${host} stopped: Postern is shutting down`));
      else if (!connected) fail(new UnreachableError(err.message, { cause: err }));
      else fail(new PolicyFetchError(`fetching https://${host}${POLICY_PATH}: ${describe(err)}`, { cause: err }));
    });
    req.on('response', (res) => {
      // Section 3.3: "HTTP 3xx redirects MUST NOT be followed"; only a 200 carries a policy.
      if (res.statusCode !== 200) {
        res.resume();
        req.destroy(new PolicyFetchError(`https://${host}${POLICY_PATH} answered HTTP ${res.statusCode ?? '?'}`));
        return;
      }
      const mediaType = (res.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (mediaType !== 'text/plain') {
        req.destroy(new PolicyFetchError(`https://${host}${POLICY_PATH} is ${mediaType || 'untyped'}, not text/plain`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_POLICY_BYTES) req.destroy(new PolicyFetchError(`the policy at ${host} is larger than ${MAX_POLICY_BYTES} octets`));
        else chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString('utf8'));
      });
      res.on('error', (err) => fail(err instanceof PolicyFetchError ? err : new PolicyFetchError(describe(err), { cause: err })));
    });
    req.end();
  });
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return err === undefined ? 'no addresses' : String(err);
}
