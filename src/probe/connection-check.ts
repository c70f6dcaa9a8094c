// The connection itself: the greeting (RFC 5321 3.1), how long it took, and whether the name in
// the banner is the one reverse DNS gives for the address, forward-confirmed (the name's A/AAAA
// records include the address again): receivers check exactly this of the hosts that send to them.

import { replyLine } from '../mail/reply.js';
import type { ReverseDns } from '../dns/reverse-dns.js';
import type { ProbeConnection } from './probe-connection.js';
import type { Findings, ProbeRole } from './report.js';

/** A greeting slower than this is a deliberate delay (a pregreet test or a tarpit), not load. */
const SLOW_GREETING_MS = 3000;

export function checkConnection(f: Findings, conn: ProbeConnection, role: ProbeRole, rdns: ReverseDns): void {
  const g = conn.greeting;
  const seconds = (conn.greetingMs / 1000).toFixed(1);
  if (g.code !== 220) {
    f.fail('connection.greeting', `The server greeted with "${replyLine(g)}" instead of 220.`, 'Check that the service on this port accepts mail and does not block this client address.');
    return;
  }
  f.pass('connection.greeting', `The server greeted after ${seconds}s: "${replyLine(g)}".`);
  if (conn.greetingMs > SLOW_GREETING_MS) {
    // RFC 5321 4.5.3.2.1: senders wait 5 minutes for the greeting, so a delay on port 25 only
    // costs spam bots; people's mail clients on the submission ports time out far sooner.
    if (role === 'mx') f.info('connection.delay', `The greeting came after ${seconds}s: a greeting delay (pregreet test or tarpit) is in place.`);
    else f.warn('connection.delay', `The greeting came after ${seconds}s; mail clients may give up before it arrives.`, 'Remove the greeting delay on the submission ports: clients there authenticate instead.');
  }

  const banner = (g.lines[0] ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(banner)) {
    f.warn('connection.banner-name', `The greeting does not start with a host name ("${banner}").`, 'Start the greeting with the server\'s fully qualified host name (RFC 5321 4.3.1).');
  }
  if (rdns.names.length === 0) {
    f.warn('connection.reverse-dns', `The address ${conn.target.address} has no reverse DNS (PTR) name${rdns.error ? ` (${rdns.error.message})` : ''}.`, `Ask the owner of the address (hosting provider) to set its PTR record to the server's host name.`);
    return;
  }
  f.pass('connection.reverse-dns', `The address ${conn.target.address} has the reverse DNS name ${rdns.names.join(', ')}.`);
  if (rdns.confirmed.length === 0) {
    f.warn('connection.fcrdns', `Reverse DNS is not forward-confirmed: ${rdns.names.join(', ')} does not resolve back to ${conn.target.address}.`, `Give ${rdns.names[0]} an A/AAAA record for ${conn.target.address}.`);
  } else {
    f.pass('connection.fcrdns', `Reverse DNS is forward-confirmed: ${rdns.confirmed.join(', ')} resolves back to ${conn.target.address}.`);
  }
  if (rdns.names.includes(banner)) f.pass('connection.banner-ptr', `The greeting's host name ${banner} matches reverse DNS.`);
  else f.warn('connection.banner-ptr', `The greeting's host name ${banner} is not the reverse DNS name (${rdns.names.join(', ')}).`, `Make the greeting name (the server's host name) and the PTR record the same name.`);
}
