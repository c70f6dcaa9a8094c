// The POP3 rows of `npm run bench`: Postern's POP3 against Dovecot's pop3d, both serving the
// same Maildirs (Postern delivers them; Dovecot reads them as `postern dovecot config` sets it up)
// over implicit TLS (RFC 8314). Three rows:
//   logins/s   whole sessions (connect, full TLS handshake, USER, PASS, QUIT) from 10 and 50 clients
//   UIDL       seconds to list a 10,000-message maildrop, from PASS done to the final "."
//   RETR       octets per second downloading a maildrop of 100 KiB messages one after another
// The two servers take turns, round after round (interleaved), so a noisy moment of this
// machine's disk or CPU falls on both; each row prints the median of the per-round ratios and
// their spread (lowest and highest).

import { parse, stringify } from 'smol-toml';
import { readFileSync, writeFileSync } from 'node:fs';
import { dovecotListeners, TestDovecot } from '../test/support/dovecot.js';
import { PosternInstance, type PosternProcess } from '../test/support/postern-process.js';
import { freePort } from '../test/support/postfix.js';
import { waitUntilAccepting } from './auth-sessions.js';
import { measureRetr, runPop3Logins, timeUidl, type Pop3Account } from './pop3-client.js';
import { runSmtpSource } from './smtp-source.js';

const DOMAIN = 'bench-pop3.test';
const PASSWORD = 'bench pop3 password';
const UIDL_MESSAGES = 10_000;
const RETR_MESSAGES = 300;
const RETR_SIZE = 100 * 1024;
const LOGIN_CLIENTS = [10, 50] as const;
const LOGIN_ROW_MS = 2_000;
const ROUNDS = 5;
const FILL_TIMEOUT_MS = 300_000;

/** What the rows started, for the caller's cleanup whatever happens. */
export interface Pop3RowsStarted {
  postern?: PosternInstance;
  server?: PosternProcess;
  dovecot?: TestDovecot;
}

interface Contender {
  readonly name: 'postern' | 'dovecot';
  readonly port: number;
}

/** One row's figures: higher is better for every row (UIDL is turned into listings per second). */
interface RowResult {
  readonly label: string;
  readonly unit: string;
  readonly postern: number[];
  readonly dovecot: number[];
}

const account = (local: string): Pop3Account => ({ user: `${local}@${DOMAIN}`, password: PASSWORD });
const loginAccounts = Array.from({ length: Math.max(...LOGIN_CLIENTS) }, (_, i) => account(`login${i + 1}`));
const uidlAccount = account('uidl');
const retrAccount = account('retr');

export async function measurePop3Rows(scale: number, started: Pop3RowsStarted): Promise<RowResult[]> {
  const uidlMessages = Math.max(100, Math.round(UIDL_MESSAGES * scale));
  const retrMessages = Math.max(20, Math.round(RETR_MESSAGES * scale));
  const contenders = await startBoth(started, uidlMessages, retrMessages);

  log('warming up the POP3 rows (Dovecot builds its indexes here)');
  for (const c of contenders) {
    // Every login account once: a server's first login of an account may cost more (Postern's
    // scrypt before its verified-password cache), and the rows measure steady state.
    await runPop3Logins({ port: c.port, accounts: loginAccounts, durationMs: 1 });
    await timeUidl(c.port, uidlAccount, uidlMessages);
    await measureRetr(c.port, retrAccount, retrMessages);
  }

  const results: RowResult[] = [
    ...LOGIN_CLIENTS.map((clients) => ({ label: `logins, ${clients} clients`, unit: 'logins/s', postern: [], dovecot: [] })),
    { label: `UIDL of ${uidlMessages} messages`, unit: 'listings/s', postern: [], dovecot: [] },
    { label: `RETR ${retrMessages} x ${RETR_SIZE / 1024} KiB`, unit: 'MB/s', postern: [], dovecot: [] },
  ];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate who goes first, so neither always runs on a machine the other just warmed.
    const order = round % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      const figures: number[] = [];
      for (const clients of LOGIN_CLIENTS) {
        const durationMs = Math.max(500, Math.round(LOGIN_ROW_MS * scale));
        const { logins, seconds } = await runPop3Logins({ port: c.port, accounts: loginAccounts.slice(0, clients), durationMs });
        figures.push(logins / seconds);
      }
      figures.push(1 / (await timeUidl(c.port, uidlAccount, uidlMessages)));
      const retr = await measureRetr(c.port, retrAccount, retrMessages);
      figures.push(retr.bytes / retr.seconds / 1e6);
      figures.forEach((value, i) => results[i]![c.name].push(value));
    }
  }
  return results;
}

export function printPop3Rows(results: readonly RowResult[], dovecotVersion: string): void {
  console.log('');
  console.log(`POP3 over implicit TLS, Postern against Dovecot ${dovecotVersion} pop3d on the same Maildirs,`);
  console.log(`${ROUNDS} interleaved rounds; ratio = postern / dovecot per round: median [lowest, highest]`);
  const widths = [28, 12, 14, 14, 22];
  console.log(['row', 'unit', 'postern', 'dovecot', 'ratio'].map((c, i) => c.padStart(widths[i]!)).join('  '));
  const misses: string[] = [];
  for (const r of results) {
    const ratios = r.postern.map((p, i) => p / r.dovecot[i]!).sort((a, b) => a - b);
    const ratio = median(ratios);
    if (ratio < 1) misses.push(r.label);
    const cells = [
      r.label,
      r.unit,
      median(r.postern).toFixed(2),
      median(r.dovecot).toFixed(2),
      `${ratio.toFixed(2)} [${ratios[0]!.toFixed(2)}, ${ratios.at(-1)!.toFixed(2)}]`,
    ];
    console.log(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
  }
  console.log(misses.length === 0 ? 'POP3 targets met: yes (>= 1.0x Dovecot in every row)' : `POP3 targets met: no (short in: ${misses.join(', ')})`);
}

/** Postern with its POP3S listener, the mailboxes filled by Postern's own delivery, then Dovecot. */
async function startBoth(started: Pop3RowsStarted, uidlMessages: number, retrMessages: number): Promise<Contender[]> {
  log('starting Postern for the POP3 rows');
  const postern = new PosternInstance({
    hostname: 'bench-pop3.localdomain',
    // Fixed ports: at log level "warn" the line naming the ports of port 0 is not logged.
    mxPort: await freePort(),
    submission: false,
    logLevel: 'warn',
    limits: { max_connections_per_ip: 1000 },
  });
  started.postern = postern;
  const pop3sPort = await freePort();
  const config = parse(readFileSync(postern.configPath, 'utf8')) as { listen: Record<string, string[]> };
  config.listen.pop3s = [`127.0.0.1:${pop3sPort}`];
  // Dovecot serves IMAPS beside its POP3 (postern dovecot config wants one of IMAP or LMTP);
  // Postern itself delivers into the Maildirs, as it does without [delivery] lmtp.
  const listeners = await dovecotListeners();
  writeFileSync(postern.configPath, stringify({ ...config, dovecot: { imaps: listeners.dovecot.imaps } }));
  await postern.cliOk(['domain', 'add', DOMAIN]);
  log(`creating ${loginAccounts.length + 2} accounts`);
  for (const a of [...loginAccounts, uidlAccount, retrAccount]) await postern.addUser(a.user, a.password);
  const server = await postern.start();
  started.server = server;
  await waitUntilAccepting(pop3sPort);

  log(`filling the maildrops: ${uidlMessages} x 1 KiB and ${retrMessages} x ${RETR_SIZE / 1024} KiB, delivered by Postern`);
  const mx = server.port('mx');
  await runSmtpSource({ port: mx, sessions: 10, messages: uidlMessages, size: 1024, reuse: true, recipient: uidlAccount.user });
  await runSmtpSource({ port: mx, sessions: 4, messages: retrMessages, size: RETR_SIZE, reuse: true, recipient: retrAccount.user });
  await postern.waitForMail(uidlAccount.user, uidlMessages, FILL_TIMEOUT_MS);
  await postern.waitForMail(retrAccount.user, retrMessages, FILL_TIMEOUT_MS);

  log('starting a private Dovecot on the same Maildirs');
  const dovecot = await TestDovecot.start(postern, { pop3s: true });
  started.dovecot = dovecot;
  return [
    { name: 'postern', port: pop3sPort },
    { name: 'dovecot', port: dovecot.port('pop3s') },
  ];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}
