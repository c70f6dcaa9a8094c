// The process logger. JSON lines (one object per line, for log shippers) or pretty text for people
// at a terminal. Both write in-process, without pino's worker-thread transports: a worker can lose
// its last lines when the process dies, and the last lines are the ones an operator needs.

import { pino, type Logger, type LevelWithSilent } from 'pino';
import pinoPretty from 'pino-pretty';
import { GatheredLogStream } from './gathered-log-stream.js';

export type LogFormat = 'json' | 'pretty';

/**
 * "auto" follows pino's own convention: pretty for a person watching a terminal, JSON lines
 * wherever a program reads them.
 */
export function chooseLogFormat(configured: LogFormat | 'auto', stdoutIsTty: boolean): LogFormat {
  if (configured !== 'auto') return configured;
  return stdoutIsTty ? 'pretty' : 'json';
}

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  readonly format: LogFormat;
  /** File descriptor or file path to write to; default 1 (stdout). */
  readonly destination?: number | string;
}

/**
 * pino's isoTime, made once per millisecond: at thousands of lines a second, Date's ISO string
 * was most of a line's time after its JSON.
 */
let stampedAt = NaN;
let stamp = '';
function isoTimeField(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

export function createLogger(opts: LoggerOptions): Logger {
  const dest = opts.destination ?? 1;
  const base = { level: opts.level, base: undefined, timestamp: isoTimeField };
  switch (opts.format) {
    case 'json':
      // Asynchronous writes keep logging off the hot path, gathered for up to 10 ms
      // (gathered-log-stream.ts); both flush synchronously when the process exits, and
      // runServer calls flush() before returning.
      return pino(base, new GatheredLogStream(pino.destination({ dest, sync: false })));
    case 'pretty':
      // Synchronous: pretty output is for a person watching, where losing lines is worse than speed.
      return pino(
        base,
        pinoPretty({
          destination: dest,
          sync: true,
          colorize: typeof dest === 'number' && dest <= 2 && process.stdout.isTTY === true,
          translateTime: 'SYS:standard',
          ignore: 'pid,hostname',
        }),
      );
  }
}
