// Whether something answers on every address the config says the server (and Dovecot) listens
// on. An "any" address is tried through loopback, which reaches it from this machine; whether
// the world reaches it too (a firewall, NAT) is beyond what the machine itself can see.

import { connect } from 'node:net';
import type { Config } from '../config/schema.js';
import { parseListenAddress } from '../config/schema.js';
import { findingsOf, type Finding } from './finding.js';

const CONNECT_TIMEOUT_MS = 3000;

/** Each listener list of the config, by the name its key has. */
function listenerLists(config: Config): [string, readonly string[]][] {
  const { listen, dovecot } = config;
  return [
    ['listen.mx', listen.mx],
    ['listen.submission', listen.submission],
    ['listen.submissions', listen.submissions],
    ['listen.pop3', listen.pop3],
    ['listen.pop3s', listen.pop3s],
    ['listen.http', listen.http],
    ['listen.https', listen.https],
    ['dovecot.imap', dovecot.imap],
    ['dovecot.imaps', dovecot.imaps],
  ];
}

export async function listenerFindings(config: Config): Promise<Finding[]> {
  const sink = findingsOf(null, 'listeners');
  for (const [key, list] of listenerLists(config)) {
    for (const text of list) {
      const { host, port } = parseListenAddress(text);
      const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
      const error = await tryConnect(target, port);
      if (error === undefined) {
        sink.pass('listener', `${key} ${text} accepts connections`);
      } else {
        const who = key.startsWith('dovecot.') ? 'Dovecot' : '`postern serve`';
        sink.fail('listener', `${key} ${text}: ${error}`, `start ${who}, or read its log for why it does not listen on ${text}`);
      }
    }
  }
  return sink.found;
}

/** undefined when the connection opens; otherwise why it did not. */
function tryConnect(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (error: string | undefined): void => {
      socket.destroy();
      resolve(error);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => done(`no answer within ${CONNECT_TIMEOUT_MS} ms`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'connection refused: nothing listens there' : err.message));
  });
}
