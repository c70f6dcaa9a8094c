// Sender authentication of one received message: SPF (RFC 7208), every DKIM signature (RFC
// 6376), DMARC (RFC 7489), the ARC chain (RFC 8617) by mailauth's authenticate(), and iprev
// (RFC 8601 section 3: forward-confirmed reverse DNS) by our own DNS client. Every lookup goes
// through that client, so [relay] dns_servers and its answer cache answer them all.
//
// mailauth runs in its strict mode: each check reads its RFC exactly (a body that no longer
// matches its body hash is dkim=fail, rsa-sha1 is dkim=policy per RFC 8301, the SPF lookup and
// void-lookup limits of RFC 7208 section 4.6.4 end the evaluation with permerror).
//
// Never throws: whatever goes wrong (a time budget exceeded, a bug) becomes temperror, which the
// policy never acts on.

import { authenticate, type AuthenticateOptions, type AuthenticateResult } from 'mailauth';
import { mailauthResolver } from '../dns/mailauth-resolver.js';
import { readHeaderFields } from '../mail/header-section.js';
import type { DnsClient } from '../dns/resolver.js';
import { lookUpReverseDns } from '../dns/reverse-dns.js';
import { formatResinfo } from './authentication-results.js';
import type {
  ArcResult,
  ArcVerdict,
  DkimResult,
  DkimVerdict,
  DmarcPolicy,
  DmarcResult,
  DmarcVerdict,
  IprevVerdict,
  SenderAuthVerdict,
  SpfResult,
  SpfVerdict,
} from './verdict.js';

export interface SenderFacts {
  /** The client's address. */
  readonly ip: string;
  /** What it said in EHLO/HELO. */
  readonly helo: string;
  /** MAIL FROM; '' for the null sender, whose HELO name SPF checks instead (RFC 7208 2.4). */
  readonly sender: string;
}

export interface SenderAuthOptions {
  readonly dns: DnsClient;
  /** Our hostname, which mailauth names in its comments ("mx.example.com: domain of ..."). */
  readonly hostname: string;
  /** The whole check's budget; RFC 7208 section 4.6.4 asks SPF alone to allow at least 20 s. */
  readonly timeoutMs: number;
}

export async function authenticateSender(message: Buffer, facts: SenderFacts, opts: SenderAuthOptions): Promise<SenderAuthVerdict> {
  let timer: NodeJS.Timeout | undefined;
  const budget = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), opts.timeoutMs);
  });
  try {
    const [mail, iprev] = await Promise.race([Promise.all([runMailauth(message, facts, opts), checkIprev(facts.ip, opts.dns)]), budget]).then(
      (r) => (r === 'late' ? Promise.reject(new Error(`no verdict within ${opts.timeoutMs} ms`)) : r),
    );
    return { ...fromMailauth(mail), iprev };
  } catch (err) {
    return unknownVerdict(facts, err instanceof Error ? err.message : String(err));
  } finally {
    clearTimeout(timer);
  }
}

function runMailauth(message: Buffer, facts: SenderFacts, opts: SenderAuthOptions): Promise<AuthenticateResult> {
  // authenticate() hands its options to spf() as they are, maxElapsedTime among them.
  const options: AuthenticateOptions & { readonly maxElapsedTime: number } = {
    ip: facts.ip,
    helo: facts.helo,
    sender: facts.sender,
    mta: opts.hostname,
    resolver: mailauthResolver(opts.dns),
    strict: true,
    // BIMI picks a logo for mail readers; it is no part of deciding whether the sender is who it says.
    disableBimi: true,
    // Without an ARC set there is no chain to validate (RFC 8617 5.2: cv=none), and mailauth's
    // ARC pass costs a quarter of the whole check's CPU even then; arcVerdict() says "none".
    disableArc: !hasArcSet(message),
    // Within the whole budget, so that SPF's own result says temperror rather than nothing.
    maxElapsedTime: opts.timeoutMs,
  };
  return authenticate(message, options);
}

/** True when the header section holds an ARC-Seal field: the message has at least one ARC set. */
function hasArcSet(message: Buffer): boolean {
  return readHeaderFields(message).some((f) => f.name.toLowerCase() === 'arc-seal');
}

/** RFC 8601 section 3 "iprev": pass when a PTR name of the address resolves back to it. */
export async function checkIprev(ip: string, dns: DnsClient): Promise<IprevVerdict> {
  const rdns = await lookUpReverseDns(dns, ip);
  const confirmed = rdns.confirmed[0];
  if (confirmed !== undefined) return { result: 'pass', ip, name: confirmed, comment: undefined };
  if (rdns.error?.temporary) return { result: 'temperror', ip, name: undefined, comment: rdns.error.message };
  const first = rdns.names[0];
  if (first !== undefined) return { result: 'fail', ip, name: undefined, comment: `${rdns.names.join(', ')} does not resolve back to ${ip}` };
  return { result: 'fail', ip, name: undefined, comment: 'no PTR record' };
}

function fromMailauth(r: AuthenticateResult): Omit<SenderAuthVerdict, 'iprev'> {
  return { spf: spfVerdict(r), dkim: dkimVerdicts(r), dmarc: dmarcVerdict(r), arc: arcVerdict(r) };
}

function spfVerdict(r: AuthenticateResult): SpfVerdict {
  const spf = r.spf;
  if (!spf) return { result: 'none', domain: undefined, resinfo: 'spf=none' };
  return { result: spfResult(spf.status.result), domain: spf.domain || undefined, resinfo: spf.info };
}

function dkimVerdicts(r: AuthenticateResult): DkimVerdict[] {
  const results = r.dkim?.results ?? [];
  if (results.length === 0) return [{ result: 'none', domain: undefined, selector: undefined, resinfo: 'dkim=none' }];
  return results.map((d) => ({
    result: dkimResult(d.status.result),
    domain: d.signingDomain || undefined,
    selector: d.selector || undefined,
    resinfo: d.info,
  }));
}

function dmarcVerdict(r: AuthenticateResult): DmarcVerdict {
  const dmarc = r.dmarc;
  if (!dmarc) {
    // RFC 7489 section 6.6.1: with no single From domain there is nothing to evaluate a policy for.
    const reason = (r as { dmarcSkipReason?: string }).dmarcSkipReason;
    return { result: reason ? 'permerror' : 'none', domain: undefined, policy: undefined, pct: 100, comment: reason };
  }
  const result = dmarcResult(dmarc.status.result);
  const record = (dmarc as { record?: { pct?: unknown; t?: unknown } }).record;
  const policy = result === 'none' ? undefined : dmarcPolicy(dmarc.policy);
  return {
    result,
    domain: (dmarc.status.header?.from as string | undefined) ?? undefined,
    policy,
    // RFC 9989 replaced pct with t=, which mailauth has already applied to `policy`.
    pct: record && record.t === undefined && typeof record.pct === 'number' ? Math.max(0, Math.min(100, record.pct)) : 100,
    comment: dmarc.error,
  };
}

function arcVerdict(r: AuthenticateResult): ArcVerdict {
  const arc = r.arc;
  if (!arc) return { result: 'none', instance: undefined, sealer: undefined, sealerDmarc: undefined, resinfo: 'arc=none' };
  const result: ArcResult = arc.status.result === 'pass' ? 'pass' : arc.status.result === 'fail' ? 'fail' : 'none';
  // mailauth keeps the last instance's AMS and its parsed ARC-Authentication-Results (RFC 8617 4.1.1).
  const last = arc as { signature?: { signingDomain?: unknown }; authenticationResults?: { dmarc?: { result?: unknown } } };
  const sealer = typeof last.signature?.signingDomain === 'string' ? last.signature.signingDomain.toLowerCase() : undefined;
  const sealerDmarc = typeof last.authenticationResults?.dmarc?.result === 'string' ? last.authenticationResults.dmarc.result.toLowerCase() : undefined;
  return {
    result,
    instance: typeof arc.i === 'number' && arc.i > 0 ? arc.i : undefined,
    sealer: result === 'pass' ? sealer : undefined,
    sealerDmarc: result === 'pass' ? sealerDmarc : undefined,
    resinfo: arc.info ?? `arc=${result}`,
  };
}

/** What the verdict is when there is none: temperror everywhere, which is never acted on. */
function unknownVerdict(facts: SenderFacts, why: string): SenderAuthVerdict {
  const domain = facts.sender === '' ? facts.helo : facts.sender.slice(facts.sender.lastIndexOf('@') + 1);
  return {
    spf: { result: 'temperror', domain, resinfo: formatResinfo('spf', 'temperror', why, []) },
    dkim: [{ result: 'temperror', domain: undefined, selector: undefined, resinfo: formatResinfo('dkim', 'temperror', why, []) }],
    dmarc: { result: 'temperror', domain: undefined, policy: undefined, pct: 100, comment: why },
    arc: { result: 'none', instance: undefined, sealer: undefined, sealerDmarc: undefined, resinfo: formatResinfo('arc', 'none', why, []) },
    iprev: { result: 'temperror', ip: facts.ip, name: undefined, comment: why },
  };
}

const SPF_RESULTS: readonly SpfResult[] = ['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror'];
const DKIM_RESULTS: readonly DkimResult[] = ['pass', 'fail', 'neutral', 'none', 'policy', 'temperror', 'permerror'];
const DMARC_RESULTS: readonly DmarcResult[] = ['pass', 'fail', 'none', 'temperror', 'permerror'];

/** mailauth's older spelling "temperr" is temperror; anything unknown is treated as an error of ours. */
function spfResult(text: string): SpfResult {
  const t = text === 'temperr' ? 'temperror' : text;
  return SPF_RESULTS.find((r) => r === t) ?? 'temperror';
}

function dkimResult(text: string): DkimResult {
  const t = text === 'temperr' ? 'temperror' : text;
  return DKIM_RESULTS.find((r) => r === t) ?? 'temperror';
}

function dmarcResult(text: string): DmarcResult {
  const t = text === 'temperr' ? 'temperror' : text;
  return DMARC_RESULTS.find((r) => r === t) ?? 'temperror';
}

function dmarcPolicy(text: string | undefined): DmarcPolicy | undefined {
  return text === 'none' || text === 'quarantine' || text === 'reject' ? text : undefined;
}
