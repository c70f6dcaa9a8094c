// What a peer's word on one recipient means to the queue: 2xx delivered, 4xx deferred (tried
// again later), 5xx failed (bounced, RFC 3464), whichever protocol carried it. A recipient the
// peer never answered for (an LMTP session lost after the final dot) is deferred.

import { replyLine, type Reply } from '../../mail/reply.js';
import type { DeliveryOutcome } from '../../queue/courier.js';
import type { RecipientResult } from './client-session.js';

/** `dsnPassedOn`: the peer got our NOTIFY and reports from here on (RFC 3461 4.1). */
export function recipientOutcome(result: RecipientResult, host: string, dsnPassedOn = false): DeliveryOutcome {
  switch (result.kind) {
    case 'refused':
      return { kind: 'failed', reply: undefined, remoteHost: host, reason: result.reason, status: result.status };
    case 'unanswered':
      return { kind: 'deferred', reply: undefined, remoteHost: host, reason: `${host} gave no reply for the recipient: ${result.reason}` };
    case 'reply':
      break;
  }
  const { reply, stage } = result;
  if (reply.code < 400) return { kind: 'delivered', reply, remoteHost: host, ...(dsnPassedOn ? { dsnPassedOn } : {}) };
  const what = stage === 'mail' ? 'the sender' : stage === 'rcpt' ? 'the recipient' : 'the message';
  const text = replyLine(reply);
  if (reply.code < 500) return { kind: 'deferred', reply, remoteHost: host, reason: `${host} temporarily refused ${what}: ${text}` };
  return { kind: 'failed', reply, remoteHost: host, reason: `${host} refused ${what}: ${text}`, status: reply.enhanced ?? defaultStatus(reply, stage) };
}

/** RFC 3463 codes for a peer that sent none. */
function defaultStatus(reply: Reply, stage: 'mail' | 'rcpt' | 'data'): string {
  if (reply.code === 552 && stage !== 'rcpt') return '5.3.4';
  return stage === 'rcpt' ? '5.1.0' : '5.0.0';
}
