// What a person starting the server sees. It goes to stderr in every log format, so stdout carries
// nothing but log lines (JSON lines stay machine-readable; pretty logs stay uncluttered).

import type { BoundListener } from './listeners.js';
import { formatHostPort } from './listeners.js';

export function listeningBanner(listeners: readonly BoundListener[]): string {
  const where = listeners.map((l) => `${l.kind} ${formatHostPort(l.address, l.port)}`).join(', ');
  return (
    `Postern is listening: ${where}\n` +
    'Next: postern domain add example.test && echo secret | postern user add alice@example.test --password-stdin\n' +
    'Reload the config with SIGHUP; stop with SIGTERM or Ctrl-C.\n'
  );
}
