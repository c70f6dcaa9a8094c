// Starts bench/fsync-peer.ts as its own process, as every other server in the bench runs, and
// tells the bench where its messages land.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/support/postfix.js';

const PEER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'fsync-peer.js');

export class FsyncPeer {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
  ) {}

  get maildirNew(): string {
    return join(this.dir, 'new');
  }

  static async start(): Promise<FsyncPeer> {
    const dir = mkdtempSync(join(tmpdir(), 'postern-fsync-peer-'));
    const port = await freePort();
    const child = spawn(process.execPath, [PEER_SCRIPT, String(port), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        if (out.includes('listening')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`fsync peer exited (${code}) before listening`)));
    });
    return new FsyncPeer(child, dir, port);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
