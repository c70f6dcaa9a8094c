// What sender authentication found out about one message: a result per method, with the
// domains each one was about, in RFC 8601's words (section 2.7 and the IANA registry of
// Email Authentication Result Names). The policy decides from it (src/policy/sender-auth-
// decision.ts), the Authentication-Results header reports it (authentication-results.ts),
// and the message's log line names it (src/log/mail-log.ts).

/** RFC 7208 section 2.6. */
export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';
/** RFC 8601 section 2.7.1; "policy" is a valid signature our rules refuse (e.g. rsa-sha1, RFC 8301). */
export type DkimResult = 'pass' | 'fail' | 'neutral' | 'none' | 'policy' | 'temperror' | 'permerror';
/** RFC 7489 section 11.2. */
export type DmarcResult = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';
/** RFC 8617 section 4.4 (cv values). */
export type ArcResult = 'pass' | 'fail' | 'none';
/** RFC 8601 section 2.7.3. */
export type IprevResult = 'pass' | 'fail' | 'temperror' | 'permerror';
/** The policies of RFC 7489 section 6.3 "p". */
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

export interface SpfVerdict {
  readonly result: SpfResult;
  /** The domain checked: MAIL FROM's, or the HELO name's for the null sender (RFC 7208 2.4). */
  readonly domain: string | undefined;
  /** Its RFC 8601 resinfo, as mailauth formats it: "spf=pass (...) smtp.mailfrom=a@example.com". */
  readonly resinfo: string;
}

export interface DkimVerdict {
  readonly result: DkimResult;
  /** d= of the signature; undefined when the message has none ("dkim=none"). */
  readonly domain: string | undefined;
  readonly selector: string | undefined;
  readonly resinfo: string;
}

export interface DmarcVerdict {
  readonly result: DmarcResult;
  /** The RFC5322.From domain the policy is about; undefined when there is none to use. */
  readonly domain: string | undefined;
  /**
   * What the domain's record asks for this message's From domain: "p", or "sp" for a subdomain
   * (RFC 7489 section 6.3), already lowered by a t=y test mode; undefined without a record.
   */
  readonly policy: DmarcPolicy | undefined;
  /** The record's pct (RFC 7489 section 6.6.4), 100 when absent or when the record uses t= instead. */
  readonly pct: number;
  /** Why there is no result to act on (several From domains, a lookup that failed). */
  readonly comment: string | undefined;
}

export interface ArcVerdict {
  readonly result: ArcResult;
  /** The highest ARC instance (i=) on the message; undefined without ARC sets. */
  readonly instance: number | undefined;
  /** Who added that instance (its ARC-Message-Signature's d=): the last forwarder. */
  readonly sealer: string | undefined;
  /** The dmarc result that forwarder recorded in its ARC-Authentication-Results, if any. */
  readonly sealerDmarc: string | undefined;
  readonly resinfo: string;
}

export interface IprevVerdict {
  readonly result: IprevResult;
  readonly ip: string;
  /** The PTR name that leads back to the address (pass), or the first one found (fail). */
  readonly name: string | undefined;
  /** What failed, for the header's comment and the log. */
  readonly comment: string | undefined;
}

export interface SenderAuthVerdict {
  readonly spf: SpfVerdict;
  /** One per DKIM-Signature (RFC 6376 section 6.1: every signature is verified), or one "none". */
  readonly dkim: readonly DkimVerdict[];
  readonly dmarc: DmarcVerdict;
  readonly arc: ArcVerdict;
  readonly iprev: IprevVerdict;
}

/** What became of the message after its verdict (src/policy/sender-auth-decision.ts). */
export type SenderAuthAction = 'deliver' | 'quarantine' | 'reject';

/** The verdict and what was done about it: what the message's log line reports. */
export interface SenderAuthReport {
  readonly verdict: SenderAuthVerdict;
  readonly action: SenderAuthAction;
  /** The DMARC policy applied after pct sampling (RFC 7489 section 6.6.4); undefined without one. */
  readonly appliedDmarcPolicy: DmarcPolicy | undefined;
  /** Why, in a few words: "dmarc example.com p=reject", "spf fail"; undefined when nothing failed. */
  readonly reason: string | undefined;
  /** Authentication-Results fields that came with the message claiming our authserv-id, removed. */
  readonly removedFields: number;
}
