// Postfix's smtp-sink(1) (Debian package postfix): one event-driven process that speaks SMTP
// and throws every message away, the receiving end Postfix's own performance tests use. With -c
// it prints its counters ("sess=N quit=N mesg=N") each time a message ends, so a benchmark can
// count what reached it without files of its own to create, fsync and list.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { canConnect, freePort } from './postfix.js';

export const SMTP_SINK = '/usr/sbin/smtp-sink';

export class PostfixSmtpSink {
  private count = 0;
  private output = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout!.setEncoding('latin1');
    child.stdout!.on('data', (chunk: string) => {
      // Counters end in "\r"; only the last complete one matters.
      this.output = (this.output + chunk).slice(-256);
      const m = /mesg=(\d+)\r[^\r]*$/.exec(this.output);
      if (m) this.count = Number(m[1]);
    });
  }

  /** Starts one on 127.0.0.1 (root drops to `nobody`, as -u requires); resolves once it accepts. */
  static async start(): Promise<PostfixSmtpSink> {
    const port = await freePort();
    const args = ['-c', ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '1024'];
    const child = spawn(SMTP_SINK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const sink = new PostfixSmtpSink(child, port);
    const deadline = Date.now() + 10_000;
    while (!(await canConnect('127.0.0.1', port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`smtp-sink did not start on port ${port}: ${stderr.trim() || `exit ${child.exitCode}`}`);
      }
      await sleep(20);
    }
    return sink;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Messages it has taken (a 250 after the end of DATA), from its counters. */
  delivered(): number {
    return this.count;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await once(this.child, 'exit');
  }
}
