// Drives a server with Postfix's smtp-source(1) and times the run. smtp-source exits once the
// server has answered 250 to every message's final dot, so the wall time of the process is the
// time to accept them all (not to deliver them).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface SourceRun {
  readonly port: number;
  readonly sessions: number;
  readonly messages: number;
  /** Body bytes per message (smtp-source -l; headers come on top). */
  readonly size: number;
  /** true: each session sends message after message (-d); false: one message per connection. */
  readonly reuse: boolean;
  readonly recipient: string;
}

const SMTP_SOURCE = ['/usr/sbin/smtp-source', '/usr/bin/smtp-source'].find((p) => existsSync(p));

export function smtpSourceAvailable(): boolean {
  return SMTP_SOURCE !== undefined;
}

/** Runs smtp-source against 127.0.0.1; resolves with the elapsed seconds, rejects if it failed. */
export function runSmtpSource(run: SourceRun): Promise<number> {
  if (SMTP_SOURCE === undefined) return Promise.reject(new Error('smtp-source not found: apt-get install postfix'));
  const args = [
    '-4',
    '-s', String(run.sessions),
    '-m', String(run.messages),
    '-l', String(run.size),
    '-f', 'sender@client.test',
    '-t', run.recipient,
    '-M', 'client.test',
    // A listen queue overflowing under 100 simultaneous connects answers RST; retry like a real client.
    '-C', '5',
    ...(run.reuse ? ['-d'] : []),
    `127.0.0.1:${run.port}`,
  ];
  const started = process.hrtime.bigint();
  const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) resolve(seconds);
      else reject(new Error(`smtp-source ${args.join(' ')} failed (${signal ?? code}): ${stderr.trim()}`));
    });
  });
}
