// Startup failures the operator can fix: each is ONE line saying what is wrong and what to do.
// runServer prints the message as "postern: <message>" and exits 1, never with a stack trace.

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

export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return (nl < 0 ? text : text.slice(0, nl)).trim();
}
