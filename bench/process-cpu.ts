// CPU time of a server made of several processes, from /proc: what a multi-process server (Postfix's
// master and its daemons, Dovecot's) costs per unit of work, set beside a one-process server's.
// A busy machine stretches wall-clock rates, but much less the CPU each side spends.
//
// Every process counts its own user and system time (fields 14-15 of /proc/PID/stat) and that
// of its children it has reaped (16-17). A daemon that exits is reaped by its master, so its
// time moves into the master's figure and stays in the sum: total = the master's four fields
// plus the four of each child alive now.

import { readdirSync, readFileSync } from 'node:fs';

/** The kernel's clock tick (USER_HZ), 100 on every Linux architecture Node runs on. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  readonly ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  readonly ticks: number;
}

function procStat(pid: number | string): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited meanwhile
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after its last ")".
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (n: number): number => Number(fields[n - 3]);
  return { ppid: field(4), ticks: field(14) + field(15) + field(16) + field(17) };
}

/** Milliseconds of CPU of each root process and its direct children (live and reaped) so far. */
export function processTreeCpuMs(roots: readonly number[]): number {
  const wanted = new Set(roots);
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(entry);
    if (stat && (wanted.has(Number(entry)) || wanted.has(stat.ppid))) ticks += stat.ticks;
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}
