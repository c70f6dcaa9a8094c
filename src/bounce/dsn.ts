// Delivery Status Notifications (RFC 3464): the bounce, the delay warning and the success report.
// A DSN is multipart/report (RFC 6522) with three parts: words for the person who sent the mail,
// the machine-readable message/delivery-status, and the original message (or its header).
// It is sent from the null sender <> (RFC 5321 4.5.5) so that it can never bounce back in a loop.

import { randomBytes } from 'node:crypto';
import { headerSection } from '../mail/header-section.js';
import { rfc5322Date } from '../mail/date.js';

/** RFC 3464 2.3.3; "expanded" is never produced here. */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

export interface DsnRecipient {
  /** The recipient as the envelope had it: Final-Recipient. */
  readonly address: string;
  /** RFC 3461 ORCPT: Original-Recipient. */
  readonly orcpt?: { readonly addrType: string; readonly address: string } | undefined;
  readonly action: DsnAction;
  /** Enhanced status code (RFC 3463), e.g. "5.1.1". */
  readonly status: string;
  /** The server that answered, for Remote-MTA. */
  readonly remoteHost?: string | undefined;
  /** The SMTP reply, for Diagnostic-Code: smtp; ... */
  readonly reply?: string | undefined;
  /** In plain words, what happened. */
  readonly reason: string;
  readonly lastAttemptAt?: number | undefined;
  /** For "delayed": when we give up. */
  readonly willRetryUntil?: number | undefined;
}

export interface DsnInput {
  /** Our hostname: Reporting-MTA and the From address. */
  readonly reportingMta: string;
  /** Who gets the DSN: the original sender, or the postmaster for a bounce of a bounce. */
  readonly to: string;
  /** Queue id of the original message, so the postmaster can find it in the log. */
  readonly queueId: string;
  readonly envid?: string | undefined;
  readonly arrivalDate: number;
  /** RFC 3461 RET; absent: the full message for a failure, as most servers do. */
  readonly ret?: 'FULL' | 'HDRS' | undefined;
  /** All recipients in one DSN must share one kind of report (all failed, or all delayed...). */
  readonly recipients: readonly DsnRecipient[];
  /** The message as spooled. */
  readonly original: Buffer;
  /** Above this size only the header is returned, whatever RET says. */
  readonly maxReturnedBytes?: number | undefined;
  readonly now?: number | undefined;
}

const DEFAULT_MAX_RETURNED = 1024 * 1024;

/** Builds the DSN message (header and body, CRLF line ends). */
export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? Date.now();
  const boundary = `${input.queueId}.${randomBytes(9).toString('base64url')}/${input.reportingMta}`;
  const kind = reportKind(input.recipients);
  const returnFull =
    kind === 'failed' && input.ret !== 'HDRS' && input.original.length <= (input.maxReturnedBytes ?? DEFAULT_MAX_RETURNED);
  const returned = returnFull ? input.original : headerSection(input.original);
  // An 8-bit original keeps its bytes: the DSN is then an 8BITMIME message (RFC 6152).
  const eightBit = returned.some((b) => b > 0x7f);

  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${input.to}>`,
    `Subject: ${SUBJECTS[kind]}`,
    `Date: ${rfc5322Date(new Date(now))}`,
    `Message-ID: <${input.queueId}.${now}.dsn@${input.reportingMta}>`,
    // RFC 3834 section 5: an automatic reply; autoresponders must not answer it.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
  ];
  const text = [
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'Content-Description: Notification',
    '',
    humanReadable(input, kind),
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    'Content-Description: Delivery report',
    '',
    deliveryStatus(input),
    `--${boundary}`,
    `Content-Type: ${returnFull ? 'message/rfc822' : 'text/rfc822-headers'}`,
    `Content-Description: ${returnFull ? 'Undelivered message' : 'Message headers'}`,
    '',
    '',
  ].join('\r\n');
  const returnedPart = withTrailingCrlf(returned);
  return Buffer.concat([
    Buffer.from(`${head.join('\r\n')}\r\n\r\n${text}`, 'utf8'),
    returnedPart,
    Buffer.from(`\r\n--${boundary}--\r\n`, 'ascii'),
  ]);
}

type ReportKind = 'failed' | 'delayed' | 'delivered';

const SUBJECTS: Record<ReportKind, string> = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
  delivered: 'Successful Mail Delivery Report',
};

function reportKind(recipients: readonly DsnRecipient[]): ReportKind {
  const [head] = recipients;
  if (head === undefined) throw new Error('a DSN needs at least one recipient');
  const first = head.action;
  if (!recipients.every((r) => sameKind(r.action, first))) throw new Error('a DSN reports one kind of outcome');
  switch (first) {
    case 'failed':
      return 'failed';
    case 'delayed':
      return 'delayed';
    case 'delivered':
    case 'relayed':
      return 'delivered';
  }
}

function sameKind(a: DsnAction, b: DsnAction): boolean {
  const success = (x: DsnAction): boolean => x === 'delivered' || x === 'relayed';
  return a === b || (success(a) && success(b));
}

/** The part people read: what happened to each recipient and what they can do about it. */
function humanReadable(input: DsnInput, kind: ReportKind): string {
  const lines = [`This is the mail system at ${input.reportingMta}.`, ''];
  switch (kind) {
    case 'failed':
      lines.push(
        'I am sorry to tell you that your message could not be delivered to one or more',
        'recipients. It is attached below. Nothing more will be tried for these recipients:',
      );
      break;
    case 'delayed':
      lines.push(
        'Your message has not been delivered yet to the recipients below. This is only a',
        'warning: I keep trying, and you do not need to send the message again.',
      );
      break;
    case 'delivered':
      lines.push('Your message was delivered to the recipients below, as you asked to be told:');
      break;
  }
  for (const r of input.recipients) {
    lines.push('', `<${fieldText(r.address)}>: ${fieldText(r.reason)}`);
    if (r.reply) lines.push(`    ${r.remoteHost ? `The server ${fieldText(r.remoteHost)} said` : 'The reply was'}: ${fieldText(oneLine(r.reply))}`);
    if (r.action === 'delayed' && r.willRetryUntil !== undefined) {
      lines.push(`    I will keep trying until ${rfc5322Date(new Date(r.willRetryUntil))}.`);
    }
    const advice = adviceFor(r);
    if (advice) lines.push(`    What you can do: ${advice}`);
  }
  lines.push('', `(Queue id ${input.queueId}: quote it when you ask the postmaster about this message.)`);
  return lines.join('\r\n');
}

/** A hint keyed by the RFC 3463 status: subject (x.1 address, x.2 mailbox, ...) and detail. */
function adviceFor(r: DsnRecipient): string | undefined {
  if (r.action !== 'failed') return undefined;
  const [, subject, detail] = r.status.split('.');
  if (r.status.startsWith('4.')) return 'the receiving side kept failing for days; try again later, or reach the recipient another way.';
  if (subject === '1' && detail === '10') return 'the recipient\'s domain does not accept mail at all (null MX); use another address.';
  if (subject === '1') return 'check the address for typos; the recipient\'s system says it does not exist.';
  if (subject === '2' && detail === '2') return 'the recipient\'s mailbox is full; tell them another way, or try again later.';
  if (subject === '3' && detail === '4') return 'the message is too big for the receiving server; send a smaller one (a link instead of attachments).';
  if (subject === '4') return 'the recipient\'s mail servers could not be found or reached; check the domain name.';
  if (subject === '7') return 'the receiving server refused the message by its policy; ask the recipient or their postmaster why.';
  return 'check the reply above; if it is unclear, forward this report to your postmaster.';
}

/** The message/delivery-status body (RFC 3464 section 2): per-message fields, then per recipient. */
function deliveryStatus(input: DsnInput): string {
  const blocks: string[][] = [];
  const message = [`Reporting-MTA: dns; ${input.reportingMta}`];
  if (input.envid !== undefined) message.push(`Original-Envelope-Id: ${fieldText(input.envid)}`);
  message.push(`Arrival-Date: ${rfc5322Date(new Date(input.arrivalDate))}`);
  blocks.push(message);
  for (const r of input.recipients) {
    const fields: string[] = [];
    if (r.orcpt) fields.push(`Original-Recipient: ${fieldText(r.orcpt.addrType)};${fieldText(r.orcpt.address)}`);
    fields.push(`Final-Recipient: rfc822; ${fieldText(r.address)}`, `Action: ${r.action}`, `Status: ${r.status}`);
    // RFC 3464 2.3.5: a host name; the delivery agent's "[address]:port" suffix is for people.
    if (r.remoteHost) fields.push(`Remote-MTA: dns; ${fieldText(r.remoteHost.replace(/\[.*$/, ''))}`);
    if (r.reply) fields.push(`Diagnostic-Code: smtp; ${fieldText(oneLine(r.reply))}`);
    if (r.lastAttemptAt !== undefined) fields.push(`Last-Attempt-Date: ${rfc5322Date(new Date(r.lastAttemptAt))}`);
    if (r.willRetryUntil !== undefined) fields.push(`Will-Retry-Until: ${rfc5322Date(new Date(r.willRetryUntil))}`);
    blocks.push(fields);
  }
  return blocks.map((b) => `${b.join('\r\n')}\r\n`).join('\r\n');
}

function withTrailingCrlf(b: Buffer): Buffer {
  return b.length >= 2 && b[b.length - 2] === 0x0d && b[b.length - 1] === 0x0a ? b : Buffer.concat([b, Buffer.from('\r\n')]);
}

/** A multi-line reply joined into one line. */
function oneLine(text: string): string {
  return text.replace(/\r?\n/g, ' ').trim();
}

/** Text from outside (a remote reply, an ENVID) placed in a header field: no control characters. */
function fieldText(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 900);
}
