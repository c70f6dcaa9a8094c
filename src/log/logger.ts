// The process logger. JSON lines (one object per line, for log shippers) or pretty text for people
// at a terminal. Both write in-process, without pino's worker-thread transports: a worker can lose
// its last lines when the process dies, and the last lines are the ones an operator needs.

import { pino, type Logger, type LevelWithSilent } from 'pino';
import pinoPretty from 'pino-pretty';

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

export function createLogger(opts: LoggerOptions): Logger {
  const dest = opts.destination ?? 1;
  const base = { level: opts.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  switch (opts.format) {
    case 'json':
      // Asynchronous writes keep logging off the hot path; pino flushes this destination
      // synchronously when the process exits, and runServer calls flush() before returning.
      return pino(base, pino.destination({ dest, sync: false }));
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
