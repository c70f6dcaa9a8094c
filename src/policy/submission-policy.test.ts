import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { configSchema } from '../config/schema.js';
import type { Envelope } from '../mail/envelope.js';
import type { SessionInfo, SessionPolicy } from '../smtp/session-host.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { AUTH_LOCKED_OUT } from './auth-throttle.js';
import { createSessionPolicy } from './session-policy.js';
import { createSubmissionPolicy, type SubmissionPolicy } from './submission-policy.js';
import { awayFromHourBoundary } from '../util/hour-boundary.js';

const ALICE = 'alice@ours.test';
const anonymous: SessionInfo = {
  clientIp: '192.0.2.10',
  clientPort: 40000,
  listener: 'submission',
  helo: 'client.test',
  tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
  authUser: undefined,
};
const alice: SessionInfo = { ...anonymous, authUser: ALICE };

let dir: string;
let store: Store;
let submission: SubmissionPolicy;
let policy: SessionPolicy;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-submission-'));
  store = openSqliteStore(join(dir, 'postern.db'));
  await store.addDomain('ours.test');
  await store.addUser(ALICE, { passwordHash: '$scrypt$test' });
  await store.addUser('bob@ours.test', { passwordHash: '$scrypt$test' });
  const config = configSchema.parse({
    submission: { max_messages_per_hour: 2, max_recipients_per_day: 3 },
    auth: { throttle: { ip_max_failures: 1, delay_ms: 100 } },
  });
  const logger = pino({ level: 'silent' });
  submission = createSubmissionPolicy(store, config, logger);
  policy = createSessionPolicy(store, { recipientDelimiter: '+', postmaster: '', hostname: 'mx.ours.test', logger, submission });
});

after(async () => {
  await submission.rateLimiter.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function envelope(recipients: string[]): Envelope {
  return {
    sender: ALICE,
    mailParams: {},
    recipients: recipients.map((address) => ({ address, params: {}, mailboxes: [] })),
    arrival: { clientIp: '192.0.2.10', clientPort: 40000, helo: 'client.test', protocol: 'ESMTPSA', listener: 'submission', receivedAt: 0 },
  } as Envelope;
}

describe('createSubmissionPolicy', () => {
  test('builds the throttle from [auth.throttle]', () => {
    assert.equal(submission.authThrottle.failure('198.51.100.1', undefined), 100);
    assert.deepEqual(submission.authThrottle.beforeAttempt('198.51.100.1'), AUTH_LOCKED_OUT);
  });
});

describe('the session policy with a submission policy', () => {
  test('MAIL FROM: an authenticated account only as itself; anonymous sessions as before', async () => {
    assert.equal(await policy.checkSender(alice, ALICE, {}), undefined);
    assert.equal((await policy.checkSender(alice, 'bob@ours.test', {}))?.code, 553);
    assert.equal((await policy.checkSender(alice, '', {}))?.code, 553);
    assert.equal(await policy.checkSender(anonymous, 'bob@ours.test', {}), undefined);
    assert.equal(await policy.checkSender(anonymous, '', {}), undefined);
    // Bad syntax is still a syntax error first.
    assert.equal((await policy.checkSender(alice, 'no-at-sign', {}))?.code, 501);
  });

  test('header From after DATA, for authenticated sessions only', async () => {
    const forged = Buffer.from('From: Bob <bob@ours.test>\r\n\r\nhi\r\n');
    assert.equal((await policy.checkMessage(alice, envelope(['x@remote.test']), forged))?.code, 553);
    assert.equal(await policy.checkMessage(anonymous, envelope(['x@remote.test']), forged), undefined);
    const own = Buffer.from('From: Alice <alice+news@ours.test>\r\n\r\nhi\r\n');
    assert.equal(await policy.checkMessage(alice, envelope(['x@remote.test']), own), undefined);
  });

  test('RCPT TO counts the transaction and the day; refused recipients stay refused as before', async () => {
    const ok = await policy.checkRecipient(alice, 'someone@remote.test', {}, 2);
    assert.equal(ok.accept, true);
    const over = await policy.checkRecipient(alice, 'someone@remote.test', {}, 3);
    assert.ok(!over.accept);
    assert.equal(over.reply.code, 450);
    assert.equal(over.reply.enhanced, '4.7.1');
    const unknown = await policy.checkRecipient(alice, 'ghost@ours.test', {}, 3);
    assert.ok(!unknown.accept);
    assert.equal(unknown.reply.code, 550);
    assert.equal((await policy.checkRecipient(anonymous, 'bob@ours.test', {}, 1000)).accept, true);
  });

  test('accepted messages are counted: the hourly limit is reached at MAIL', async () => {
    await awayFromHourBoundary();
    await policy.messageAccepted(alice, envelope(['a@remote.test']));
    assert.equal(await policy.checkSender(alice, ALICE, {}), undefined);
    await policy.messageAccepted(alice, envelope(['b@remote.test', 'c@remote.test']));
    const r = await policy.checkSender(alice, ALICE, {});
    assert.equal(r?.code, 450);
    assert.match(r?.lines[0] ?? '', /limit of 2 messages per hour/);
    // Three recipients today: the daily limit is used up too.
    assert.ok(!(await policy.checkRecipient(alice, 'd@remote.test', {}, 0)).accept);
    // Anonymous sessions are not counted.
    await policy.messageAccepted(anonymous, envelope(['e@remote.test']));
  });
});
