// The SRS secret: 32 random bytes in <data_dir>/srs-secret, made on first use and readable by the
// service account alone (0600), since whoever has it can make us relay bounces anywhere. It must
// stay the same across restarts, or every SRS address handed out before is refused.

import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SRS_SECRET_FILE = 'srs-secret';

export function loadSrsSecret(dataDir: string): Buffer {
  const path = join(dataDir, SRS_SECRET_FILE);
  try {
    // 'wx': two processes starting at once must not each write a different secret.
    writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  if (secret.length < 16) throw new Error(`${path} holds no usable SRS secret: delete it and start again (SRS addresses already sent stop working)`);
  return secret;
}
