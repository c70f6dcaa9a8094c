// Keeps the layers of src/ pointing one way. Every folder has a rank; a file may import its own
// folder and folders of a lower rank, never a higher one nor a sibling of the same rank, so that
// the vocabulary (mail/) stays free of everything, protocols stay free of policy, and nothing
// below server/ and cli/ can reach back up into them. Product code must not import test code
// or test libraries either: they are not installed in production (devDependencies).
//
// To add a folder, give it a rank here; the test fails for a folder that has none.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from './support/postern-process.js';

/** Lower ranks are imported by higher ones. Siblings of one rank do not import each other. */
export const LAYERS: Readonly<Record<string, number>> = {
  mail: 0, // envelope, replies, queue ids, addresses, header section: imports nothing of ours
  util: 1, // small helpers with no knowledge of mail
  metrics: 1, // the Prometheus registry and every metric in it; modules import the ones they move
  srs: 1, // the Sender Rewriting Scheme for forwarded mail: encode, verify, expire; its secret
  config: 2,
  auth: 3, // stored secrets and token checks
  dns: 3,
  tls: 3,
  spool: 3, // segments, group commit, recovery, directory fsync
  store: 4,
  dkim: 4,
  'sender-auth': 4, // SPF, DKIM, DMARC, ARC (mailauth) and iprev of received mail; the Authentication-Results field
  sasl: 5, // mechanisms as step machines
  directory: 5, // who is local and which mailboxes an address reaches
  smtp: 6, // the server-side protocol
  pop3: 6, // the mailbox access protocol (RFC 1939), beside SMTP: neither imports the other
  log: 7,
  mailbox: 7, // Maildir paths, and a Maildir as a POP3 maildrop
  policy: 8, // decisions only
  publish: 8, // what clients and DNS are told: offered services, our MTA-STS policy
  intake: 8, // between the final dot and the 250: loop check, Received header, spool append
  queue: 9, // scheduling, retries, operator actions, driving couriers through one interface
  delivery: 10, // couriers: local/ (Maildir) and remote/ (MX, smart host, our SMTP client)
  bounce: 10, // delivery status notifications, queued through the queue it serves
  web: 10, // the HTTP(S) listener's requests: client autoconfiguration, MTA-STS policy; server/ feeds it sockets
  server: 11,
  probe: 11, // `postern probe`: a mail server tested from the outside, with the delivery client's pieces
  doctor: 12, // `postern doctor`: published DNS, certificates, listeners, blocklists, and a probe of ourselves
  cli: 13, // `postern serve` starts the server
};

/** Packages only tests may use. */
const TEST_ONLY_PACKAGES = ['nodemailer', 'fast-check', 'node:test', '@types/'];

export interface Violation {
  readonly file: string;
  readonly imports: string;
  readonly why: string;
}

/** Every import specifier in a TypeScript source, static or dynamic. */
export function importSpecifiers(source: string): string[] {
  const found: string[] = [];
  const pattern = /(?:^|[^\w.])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[^\w.])import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(pattern)) found.push((m[1] ?? m[2] ?? m[3]) as string);
  return found;
}

/**
 * Checks the files under src/ (paths relative to the repository root, with their text). Test
 * files beside the code (*.test.ts) may import anything; the rules are for the product.
 */
export function checkImports(files: ReadonlyMap<string, string>, layers: Readonly<Record<string, number>> = LAYERS): Violation[] {
  const violations: Violation[] = [];
  for (const [file, source] of files) {
    if (file.endsWith('.test.ts')) continue;
    const from = folderOf(file);
    if (from === undefined) continue;
    const fromRank = layers[from];
    if (fromRank === undefined) {
      violations.push({ file, imports: '', why: `src/${from}/ has no rank in LAYERS` });
      continue;
    }
    for (const spec of importSpecifiers(source)) {
      if (!spec.startsWith('.')) {
        if (TEST_ONLY_PACKAGES.some((p) => spec === p || spec.startsWith(p.endsWith('/') ? p : `${p}/`))) {
          violations.push({ file, imports: spec, why: 'a test-only package in product code' });
        }
        continue;
      }
      const target = normalize(join(dirname(file), spec));
      if (!target.startsWith(`src${sep}`)) {
        violations.push({ file, imports: spec, why: 'product code importing from outside src/ (test code?)' });
        continue;
      }
      const to = folderOf(target);
      if (to === undefined || to === from) continue;
      const toRank = layers[to];
      if (toRank === undefined) violations.push({ file, imports: spec, why: `src/${to}/ has no rank in LAYERS` });
      else if (toRank > fromRank) violations.push({ file, imports: spec, why: `${from}/ (rank ${fromRank}) must not import ${to}/ (rank ${toRank}), which is above it` });
      else if (toRank === fromRank) violations.push({ file, imports: spec, why: `${from}/ and ${to}/ are siblings (rank ${fromRank}): neither imports the other` });
    }
  }
  return violations;
}

/** "src/spool/spool.ts" -> "spool"; a file directly in src/ belongs to no folder. */
function folderOf(file: string): string | undefined {
  const parts = file.split(sep);
  return parts[0] === 'src' && parts.length > 2 ? parts[1] : undefined;
}

function sourcesUnder(dir: string, out = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourcesUnder(path, out);
    else if (name.endsWith('.ts')) out.set(relative(REPO_ROOT, path), readFileSync(path, 'utf8'));
  }
  return out;
}

describe('import graph', () => {
  test('src/ imports point down the layers, and never into test code', () => {
    const violations = checkImports(sourcesUnder(join(REPO_ROOT, 'src')));
    assert.deepEqual(violations, [], violations.map((v) => `${v.file}: ${v.imports}: ${v.why}`).join('\n'));
  });

  test('every folder of src/ has a rank', () => {
    const folders = readdirSync(join(REPO_ROOT, 'src')).filter((n) => statSync(join(REPO_ROOT, 'src', n)).isDirectory());
    assert.deepEqual(folders.filter((f) => LAYERS[f] === undefined), []);
  });

  test('the checker catches what it is for', () => {
    const files = new Map([
      ['src/mail/envelope.ts', "import { SmtpSession } from '../smtp/session.js';"],
      ['src/smtp/session.ts', "import type { Reply } from '../mail/reply.js';\nimport { x } from './dot-reader.js';"],
      ['src/policy/relay.ts', "import { RemoteDelivery } from '../delivery/remote-delivery.js';"],
      ['src/queue/spool.ts', "const m = await import('../server/server.js');"],
      ['src/delivery/smtp-client.ts', "import { makeCertificate } from '../../test/support/test-certificate.js';"],
      ['src/server/server.ts', "import nodemailer from 'nodemailer';\nimport fc from 'fast-check';\nimport { pino } from 'pino';"],
      ['src/smtp/session.test.ts', "import fc from 'fast-check';\nimport { x } from '../server/server.js';"],
      ['src/newthing/a.ts', "import { x } from '../mail/reply.js';"],
    ]);
    const found = checkImports(files).map((v) => `${v.file} ${v.imports}`);
    assert.deepEqual(found, [
      'src/mail/envelope.ts ../smtp/session.js',
      'src/policy/relay.ts ../delivery/remote-delivery.js',
      'src/queue/spool.ts ../server/server.js',
      'src/delivery/smtp-client.ts ../../test/support/test-certificate.js',
      'src/server/server.ts nodemailer',
      'src/server/server.ts fast-check',
      'src/newthing/a.ts ',
    ]);
  });

  test('import specifiers: static, type-only, re-exports, side effects and dynamic', () => {
    const source = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from './c.js';",
      "import './side-effect.js';",
      "const d = await import('./d.js');",
      'import {\n  e,\n  f,\n} from "./ef.js";',
      "const text = 'a string that says import nothing';",
    ].join('\n');
    assert.deepEqual(importSpecifiers(source), ['./a.js', '../b.js', './c.js', './side-effect.js', './d.js', './ef.js']);
  });
});
