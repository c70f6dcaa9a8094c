// postern queue list|show|flush|retry|hold|release|delete: the queue as operators know it from
// Postfix's mailq, postqueue -f and postsuper -h/-H/-d. Reads come straight from the store; changes
// are requests that the running server carries out (src/queue/queue-control.ts), because the server
// is the only writer of queue state. The command waits a few seconds to report that it was done.

import { join } from 'node:path';
import type { Command } from 'commander';
import type { QueueAction, QueueEntry, Store } from '../store/store.js';
import { headerSection } from '../mail/header-section.js';
import { readSpooledMessage } from '../spool/spool-reader.js';
import { formatDuration } from '../util/duration.js';
import { withStore } from './admin-store.js';
import { CliError } from './cli-error.js';
import { isoTime, printLine, printList } from './output.js';
import { CONFIG_OPTION, JSON_OPTION } from './options.js';

/** How long a command waits for the server to carry out its request. */
const WAIT_MS = 5000;
const POLL_MS = 100;

const DONE: Record<QueueAction, string> = {
  flush: 'every deferred message is being retried now',
  retry: 'is being retried now',
  hold: 'is on hold: no delivery attempts until "postern queue release"',
  release: 'is released from hold',
  delete: 'is deleted from the queue',
};

export function addQueueCommands(program: Command): void {
  const queue = program.command('queue').description('inspect and manage the mail queue');

  queue
    .command('list')
    .description('list queued messages with the state of each recipient')
    .option(...CONFIG_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { config?: string; json?: boolean }) => {
      const entries = await withStore(opts.config, (store) => store.queueList());
      const now = Date.now();
      if (opts.json) {
        printList(entries.map((e) => forJson(e, now)), true, () => '');
        return;
      }
      if (entries.length === 0) {
        printLine('the queue is empty');
        return;
      }
      for (const e of entries) printLine(describe(e, now));
      printLine(`${entries.length} message${entries.length === 1 ? '' : 's'} in the queue`);
    });

  queue
    .command('show')
    .description('show one message: envelope, recipients and the message header')
    .argument('<id>', 'queue id')
    .option(...CONFIG_OPTION)
    .option(...JSON_OPTION)
    .action(async (id: string, opts: { config?: string; json?: boolean }) => {
      const { entry, spooled } = await withStore(opts.config, async (store, config) => ({
        entry: await requireEntry(store, id),
        spooled: await readSpooledMessage(join(config.data_dir, 'spool'), id),
      }));
      const headers = spooled ? headerSection(spooled.message).toString('utf8') : undefined;
      if (opts.json) {
        const shown = { ...forJson(entry, Date.now()), mailParams: spooled?.envelope.mailParams, arrival: spooled?.envelope.arrival, headers };
        process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
        return;
      }
      printLine(describe(entry, Date.now()));
      if (spooled) {
        const a = spooled.envelope.arrival;
        printLine(`arrived ${isoTime(a.receivedAt)} from ${a.helo} [${a.clientIp}] via ${a.listener}${a.authUser ? ` as ${a.authUser}` : ''}`);
        printLine('');
        process.stdout.write(headers ?? '');
      } else {
        printLine('(the message is no longer in the spool)');
      }
    });

  queue
    .command('flush')
    .description('retry every deferred message now')
    .option(...CONFIG_OPTION)
    .action(async (opts: { config?: string }) => {
      printLine(await withStore(opts.config, (store) => request(store, 'flush', null)));
    });

  for (const [name, description] of [
    ['retry', 'retry one message now'],
    ['hold', 'stop delivery attempts for a message'],
    ['release', 'resume delivery of a held message'],
    ['delete', 'remove a message from the queue without a bounce'],
  ] as const) {
    queue
      .command(name)
      .description(description)
      .argument('<id>', 'queue id')
      .option(...CONFIG_OPTION)
      .action(async (id: string, opts: { config?: string }) => {
        printLine(
          await withStore(opts.config, async (store) => {
            await requireEntry(store, id);
            return request(store, name, id);
          }),
        );
      });
  }
}

async function requireEntry(store: Store, id: string): Promise<QueueEntry> {
  const entry = await store.queueGet(id);
  if (!entry) throw new CliError(`no message ${id} in the queue (see: postern queue list)`);
  return entry;
}

/** Files the request and waits a little for the server to carry it out. */
async function request(store: Store, action: QueueAction, id: string | null): Promise<string> {
  const requestId = await store.queueAddRequest(action, id);
  const what = id === null ? DONE[action] : `${id} ${DONE[action]}`;
  for (let waited = 0; waited < WAIT_MS; waited += POLL_MS) {
    if (!(await store.queueRequests()).some((r) => r.id === requestId)) return what;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return `requested: the server will do it when it runs (it did not answer within ${WAIT_MS / 1000}s; is it running?)`;
}

/** mailq-like: the message line, then one line per recipient. */
function describe(e: QueueEntry, now: number): string {
  const head = `${e.queueId}${e.state === 'hold' ? '!' : ''}  ${e.size} bytes  ${formatDuration(now - e.receivedAt)} old  <${e.sender}>${e.state === 'hold' ? '  (on hold)' : ''}`;
  const lines = (e.recipientStates ?? []).map((r) => {
    const parts = [`    <${r.address}>  ${r.status}`];
    if (r.attempts > 0) parts.push(`after ${r.attempts} attempt${r.attempts === 1 ? '' : 's'}`);
    if (r.status === 'deferred' && r.nextAttemptAt !== null) parts.push(`next in ${formatDuration(r.nextAttemptAt - now)}`);
    const why = r.lastReason ?? undefined;
    if (why && r.status !== 'delivered') parts.push(`(${why}${r.lastReply ? `: ${r.lastReply}` : ''})`);
    return parts.join('  ');
  });
  return [head, ...lines].join('\n');
}

function forJson(e: QueueEntry, now: number): Record<string, unknown> {
  return {
    id: e.queueId,
    size: e.size,
    ageSeconds: Math.round((now - e.receivedAt) / 1000),
    receivedAt: isoTime(e.receivedAt),
    sender: e.sender,
    state: e.state,
    envid: e.envid ?? null,
    ret: e.ret ?? null,
    delayWarned: e.delayWarned ?? false,
    recipients: (e.recipientStates ?? []).map((r) => ({
      address: r.address,
      status: r.status,
      attempts: r.attempts,
      nextAttemptAt: r.nextAttemptAt === null ? null : isoTime(r.nextAttemptAt),
      lastAttemptAt: r.lastAttemptAt === null ? null : isoTime(r.lastAttemptAt),
      lastReply: r.lastReply,
      lastReason: r.lastReason,
      remoteHost: r.remoteHost,
    })),
  };
}
