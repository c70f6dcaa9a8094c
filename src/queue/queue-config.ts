// The [queue] table (and the top-level keys the queue needs) turned into QueueManager options.

import type { Config } from '../config/schema.js';
import { durationMs } from '../util/duration.js';
import type { QueueManagerOptions } from './queue-manager.js';

export type QueueSettings = Pick<
  QueueManagerOptions,
  'retryBaseMs' | 'retryMaxMs' | 'giveUpMs' | 'delayWarningMs' | 'maxReceivedHeaders'
>;

export function queueSettings(config: Config): QueueSettings {
  const q = config.queue;
  const first = durationMs(q.retry_first);
  return {
    // A zero first retry would retry in a tight loop: one second is the floor.
    retryBaseMs: Math.max(first, 1000),
    retryMaxMs: Math.max(durationMs(q.retry_max), first, 1000),
    giveUpMs: durationMs(q.give_up),
    delayWarningMs: durationMs(q.delay_warning),
    maxReceivedHeaders: q.max_received_headers,
  };
}
