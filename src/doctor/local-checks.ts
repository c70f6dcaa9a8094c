// What needs no network: postmaster@ every local domain must reach someone who reads it (RFC
// 5321 section 4.5.1), and data_dir must have room for the queue and the mailboxes.

import { statfs } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { RecipientResolver } from '../directory/recipient-resolver.js';
import type { DirectoryStore } from '../store/store.js';
import { findingsOf, type Finding } from './finding.js';

/** Below this, a few large messages fill the disk: the queue stops accepting (FAIL). */
export const DISK_FAIL_BYTES = 256 * 1024 * 1024;
/** Below this, or below DISK_WARN_PERCENT, it is time to make room (WARN). */
export const DISK_WARN_BYTES = 2 * 1024 * 1024 * 1024;
export const DISK_WARN_PERCENT = 5;

export async function postmasterFindings(config: Config, store: DirectoryStore, domain: string): Promise<Finding[]> {
  const sink = findingsOf(domain, 'mail');
  const resolver = new RecipientResolver(store, {
    recipientDelimiter: config.recipient_delimiter,
    postmaster: config.postmaster,
    hostname: config.hostname,
  });
  const address = `postmaster@${domain}`;
  const fix = `postern alias add ${address} YOU@${domain} (or set postmaster = "you@example.com" in the config)`;
  const r = await resolver.resolveLocal(address);
  if (r.kind !== 'resolved') {
    sink.fail('mail.postmaster', `${address} does not resolve (${r.kind}${'chain' in r ? `: ${r.chain.join(' -> ')}` : ''})`, fix);
    return sink.found;
  }
  const users = [];
  for (const mailbox of r.mailboxes) if (await store.getUser(mailbox)) users.push(mailbox);
  const targets = [...users, ...r.remote];
  if (targets.length === 0) {
    // The resolver's last resort (recipient-resolver.ts): a mailbox outside every domain, which no user logs in to.
    sink.warn('mail.postmaster', `${address} goes to ${r.mailboxes.join(', ')}, a mailbox no user can read`, fix);
  } else {
    sink.pass('mail.postmaster', `${address} delivers to ${targets.join(', ')}`);
  }
  if (r.dangling.length > 0) sink.warn('mail.postmaster', `${address} also names ${r.dangling.join(', ')}, which lead nowhere`, `postern alias remove ${address} ${r.dangling[0] ?? ''}`);
  return sink.found;
}

export async function diskFindings(config: Config): Promise<Finding[]> {
  const sink = findingsOf(null, 'disk');
  try {
    const fs = await statfs(config.data_dir);
    const free = fs.bavail * fs.bsize;
    const percent = fs.blocks > 0 ? (100 * fs.bavail) / fs.blocks : 100;
    const said = `${formatBytes(free)} (${percent.toFixed(1)}%) free under ${config.data_dir}`;
    const fix = `make room on the file system of ${config.data_dir}, or move data_dir to a larger one`;
    if (free < DISK_FAIL_BYTES) sink.fail('disk.free', said, fix);
    else if (free < DISK_WARN_BYTES || percent < DISK_WARN_PERCENT) sink.warn('disk.free', said, fix);
    else sink.pass('disk.free', said);
  } catch (err) {
    sink.fail('disk.free', `cannot read the free space of ${config.data_dir}: ${(err as Error).message}`);
  }
  return sink.found;
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i] ?? ''}`;
}
