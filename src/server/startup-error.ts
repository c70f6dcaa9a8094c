// Startup failures the operator can fix: each is ONE line saying what is wrong and what to do.
// runServer prints the message as "postern: <message>" and exits 1, never with a stack trace.

import type { ListenerKind } from '../smtp/envelope.js';

export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** Plain words for the errno codes a file or socket operation typically fails with. */
export function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    default:
      return firstLine(err instanceof Error ? err.message : String(err));
  }
}

export function listenError(err: unknown, kind: ListenerKind, address: string): StartupError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  let hint: string;
  switch (code) {
    case 'EADDRINUSE':
      hint = `another server running? change [listen] ${kind} in the config`;
      break;
    case 'EACCES':
    case 'EPERM':
      hint = 'ports below 1024 need root or CAP_NET_BIND_SERVICE';
      break;
    case 'EADDRNOTAVAIL':
      hint = `no interface has this address; change [listen] ${kind} in the config`;
      break;
    default:
      hint = `check [listen] ${kind} in the config`;
  }
  return new StartupError(`cannot listen on ${address}: ${describeErrno(err)} (${hint})`, { cause: err });
}

export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return (nl < 0 ? text : text.slice(0, nl)).trim();
}
