// Where a mailbox's Maildir is: <mail root>/<domain>/<local part>/, for the delivery that writes
// it and the POP3 maildrop that reads it (the name itself is src/mail/mailbox-directory.ts).

import { join } from 'node:path';
import { mailboxDirectory } from '../mail/mailbox-directory.js';

export { safePathComponent } from '../mail/mailbox-directory.js';

/** The Maildir of a mailbox address: <mailRoot>/<domain>/<local>. */
export function maildirPath(mailRoot: string, mailbox: string): string {
  return join(mailRoot, mailboxDirectory(mailbox));
}
