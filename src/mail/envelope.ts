// The envelope of a message: what MAIL FROM and RCPT TO said, plus how the message reached us.
// It is stored with the message in the spool and read back by delivery and bounces.

/** A queue id: 12+ characters of [0-9A-Za-z], unique, sortable by acceptance time. */
export type QueueId = string;

export type BodyType = '7BIT' | '8BITMIME' | 'BINARYMIME';
export type DsnNotify = 'SUCCESS' | 'FAILURE' | 'DELAY';

/** MAIL FROM parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461 RET/ENVID). */
export interface MailParams {
  size?: number | undefined;
  body?: BodyType | undefined;
  smtputf8?: boolean | undefined;
  /** RFC 3461 RET: return the full message or headers only in a DSN. */
  ret?: 'FULL' | 'HDRS' | undefined;
  /** RFC 3461 ENVID, decoded from xtext. */
  envid?: string | undefined;
}

/** RCPT TO parameters (RFC 3461 NOTIFY and ORCPT). */
export interface RcptParams {
  /** NOTIFY=NEVER is the empty list; undefined means the parameter was absent. */
  notify?: DsnNotify[] | undefined;
  /** ORCPT, decoded from xtext: address type ("rfc822", "utf-8") and the original address. */
  orcpt?: { addrType: string; address: string } | undefined;
}

export interface EnvelopeRecipient {
  /** The address as the client gave it in RCPT TO (domain normalized: lower case, A-labels). */
  readonly address: string;
  readonly params: RcptParams;
  /** Local mailboxes (user addresses) this recipient resolves to; empty for remote recipients. */
  readonly mailboxes: readonly string[];
  /**
   * Remote addresses a local alias expands to; the queue relays a copy to each. Optional so that
   * envelopes spooled before it existed still decode.
   */
  readonly forwards?: readonly string[] | undefined;
  /**
   * On the queue's copy for one forward (never spooled): the local alias that sent it there, whose
   * domain is the forwarder's in an SRS rewrite of the sender.
   */
  readonly forwardedBy?: string | undefined;
}

/** How the message reached us: what the Received header and the log record. */
export interface Arrival {
  readonly clientIp: string;
  readonly clientPort: number;
  /** What the client said in EHLO/HELO. */
  readonly helo: string;
  /** RFC 3848 protocol name: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP... */
  readonly protocol: string;
  readonly listener: ListenerKind;
  readonly tls?: { readonly version: string; readonly cipher: string } | undefined;
  readonly authUser?: string | undefined;
  /** Milliseconds since the epoch. */
  readonly receivedAt: number;
}

export type ListenerKind = 'mx' | 'submission' | 'submissions';

export interface Envelope {
  /** The reverse path; '' is the null sender <>. */
  readonly sender: string;
  readonly mailParams: MailParams;
  readonly recipients: readonly EnvelopeRecipient[];
  readonly arrival: Arrival;
  /**
   * The sender's domain asked for quarantine (DMARC p=quarantine, RFC 7489 section 6.3): local
   * copies go to the mailbox's Junk folder. Optional so that envelopes spooled before it decode.
   */
  readonly quarantine?: boolean | undefined;
}
