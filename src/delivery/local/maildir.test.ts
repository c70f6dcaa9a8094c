import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep, basename } from 'node:path';
import fc from 'fast-check';
import { maildirPath, safePathComponent } from '../../mailbox/maildir-path.js';
import { baseName, uidlOf } from '../../mailbox/maildrop.js';
import { deliveriesPerMaildir, Maildirs, queueIdOfName } from './maildir.js';
import { RecentActivity } from '../../util/recent-activity.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function mailRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'postern-maildir-'));
  roots.push(root);
  return join(root, 'mail');
}

const NAME = /^(\d+)\.M(\d+)P(\d+)Q(\d+)\.mx\.example\.test,S=(\d+),W=(\d+)$/;

describe('Maildirs.deliver', () => {
  test('creates exactly one file in new/ with Return-Path, Delivered-To and the message', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    const message = Buffer.from('Subject: hello\r\n\r\nHi Alice.\r\n');
    const path = await maildirs.deliver('alice@example.test', 'bob@remote.test', message);

    const dir = join(root, 'example.test', 'alice');
    assert.deepEqual(readdirSync(join(dir, 'new')), [basename(path)]);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
    assert.deepEqual(readdirSync(join(dir, 'cur')), []);
    assert.equal(
      readFileSync(path, 'utf8'),
      'Return-Path: <bob@remote.test>\r\nDelivered-To: alice@example.test\r\nSubject: hello\r\n\r\nHi Alice.\r\n',
    );
    const m = NAME.exec(basename(path));
    assert.ok(m, `Dovecot-style name: ${basename(path)}`);
    assert.equal(Number(m[3]), process.pid);
    assert.equal(Number(m[5]), statSync(path).size, 'S= is the file size');
    assert.equal(Number(m[6]), statSync(path).size, 'W= (the size with CRLF) too: the copy has CRLF line ends');
  });

  test('the Junk folder: Maildir++ .Junk/ with tmp, new, cur and a maildirfolder file, beside a real INBOX', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    const path = await maildirs.deliver('alice@example.test', 'bob@remote.test', Buffer.from('Subject: junk\r\n\r\n'), { folder: 'Junk' });
    const dir = join(root, 'example.test', 'alice');
    assert.equal(path, join(dir, '.Junk', 'new', basename(path)));
    assert.deepEqual(readdirSync(join(dir, '.Junk')).sort(), ['cur', 'maildirfolder', 'new', 'tmp']);
    assert.equal(readFileSync(join(dir, '.Junk', 'maildirfolder'), 'utf8'), '');
    // The INBOX exists (Dovecot needs the parent Maildir) and holds nothing: POP3 reads only it.
    assert.deepEqual(readdirSync(join(dir, 'new')), []);
    assert.deepEqual(readdirSync(join(dir, 'cur')), []);
    const second = await maildirs.deliver('alice@example.test', 'bob@remote.test', Buffer.from('\r\n'), { folder: 'Junk' });
    assert.equal(readdirSync(join(dir, '.Junk', 'new')).length, 2, second);
  });

  test('the null sender becomes Return-Path: <>, and CR/LF in addresses cannot add headers', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    const a = await maildirs.deliver('alice@example.test', '', Buffer.from('\r\n'));
    assert.ok(readFileSync(a, 'utf8').startsWith('Return-Path: <>\r\nDelivered-To: alice@example.test\r\n'));
    const b = await maildirs.deliver('alice@example.test', 'x@y.test>\r\nBcc: z@q.test', Buffer.from('\r\n'));
    assert.equal(readFileSync(b, 'utf8').split('\r\n')[0], 'Return-Path: <x@y.test???Bcc: z@q.test>');
  });

  test('concurrent deliveries to one mailbox each get their own file', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    const paths = await Promise.all(
      Array.from({ length: 100 }, (_, i) => maildirs.deliver('alice@example.test', 's@r.test', Buffer.from(`n ${i}\r\n`))),
    );
    assert.equal(new Set(paths).size, 100);
    assert.equal(readdirSync(join(root, 'example.test', 'alice', 'new')).length, 100);
  });

  test('hostile local parts stay inside the mail directory', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    for (const local of ['..', '.', '../../etc', 'a/../../b', 'x\u0000y', '%2e%2e', '.hidden', 'A/B\\C']) {
      const path = await maildirs.deliver(`${local}@example.test`, 's@r.test', Buffer.from('\r\n'));
      const rel = relative(resolve(root), resolve(path));
      assert.ok(!rel.startsWith('..') && !rel.startsWith(sep), `${JSON.stringify(local)} -> ${path}`);
      assert.equal(rel.split(sep).length, 4, `domain/local/new/file for ${JSON.stringify(local)}: ${rel}`);
    }
  });
});

describe('copies named by queue id, found again after a crash', () => {
  const ID = '0AbCdEfG123xyzQW';

  test('a copy of a queued message carries its queue id in the delivery identifier', async () => {
    const maildirs = new Maildirs(mailRoot(), 'mx.example.test');
    const path = await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'), { queueId: ID });
    assert.match(basename(path), new RegExp(`^\\d+\\.M\\d+P${process.pid}Q\\d+K${ID}\\.mx\\.example\\.test,S=\\d+,W=\\d+$`));
    assert.equal(queueIdOfName(basename(path)), ID);
    assert.equal(queueIdOfName(`${basename(path)}:2,RS`), ID, 'flags after ":2," do not hide it');
    assert.equal(queueIdOfName('1700000000.M1P2Q3.mx.example.test,S=1,W=1'), undefined, 'a name without one');
    assert.equal(queueIdOfName('1700000000.M1P2V3I4.dovecot.host,S=1,W=1'), undefined, 'a name Dovecot made');
  });

  test('two copies of one message in one Maildir still have distinct names, hence distinct UIDLs', async () => {
    const maildirs = new Maildirs(mailRoot(), 'mx.example.test');
    const a = await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'), { queueId: ID });
    const b = await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'), { queueId: ID });
    assert.notEqual(uidlOf(baseName(basename(a))), uidlOf(baseName(basename(b))));
  });

  test('earlierCopies finds copies in new/, in cur/ with flags, and in .Junk, and only those asked for', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    const dir = join(root, 'example.test', 'alice');
    const inNew = 'AAAAAAAA000new01';
    const inCur = 'AAAAAAAA000cur01';
    const inJunk = 'AAAAAAAA000junk1';
    const notAsked = 'AAAAAAAA000other';
    const missing = 'AAAAAAAA000gone1';
    await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'), { queueId: inNew });
    const read = await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'), { queueId: inCur });
    renameSync(read, join(dir, 'cur', `${basename(read)}:2,S`));
    await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'), { queueId: inJunk, folder: 'Junk' });
    await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'), { queueId: notAsked });
    await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'));

    const found = await new Maildirs(root, 'mx.example.test').earlierCopies('alice@example.test', new Set([inNew, inCur, inJunk, missing]));
    assert.deepEqual([...found].sort(), [inCur, inJunk, inNew].sort());
  });

  test('earlierCopies clears away the asked-for messages\' leftovers in tmp/ and nothing else', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    await maildirs.deliver('alice@example.test', 's@r.test', Buffer.from('\r\n'));
    const tmp = join(root, 'example.test', 'alice', 'tmp');
    const cutShort = `1700000000.M1P2Q3K${ID}.mx.example.test,S=1,W=1`;
    const someoneElses = '1700000000.M1P2Q4KBBBBBBBB000zzzzz.mx.example.test,S=1,W=1';
    writeFileSync(join(tmp, cutShort), 'x');
    writeFileSync(join(tmp, someoneElses), 'x');
    assert.deepEqual([...(await maildirs.earlierCopies('alice@example.test', new Set([ID])))], []);
    assert.deepEqual(readdirSync(tmp), [someoneElses]);
  });

  test('earlierCopies of a mailbox that was never delivered to finds nothing', async () => {
    const root = mailRoot();
    mkdirSync(root, { recursive: true });
    assert.equal((await new Maildirs(root, 'mx.example.test').earlierCopies('nobody@example.test', new Set([ID]))).size, 0);
  });
});

describe('safePathComponent', () => {
  test('keeps ordinary local parts readable', () => {
    assert.equal(safePathComponent('alice.smith+tag'), 'alice.smith+tag');
    assert.equal(safePathComponent('..'), '%2E.');
    assert.equal(safePathComponent('a/b'), 'a%2Fb');
    assert.equal(safePathComponent('Ünï'), '%C3%9Cn%C3%AF');
  });

  test('never yields a separator, NUL, "." or "..", and distinct inputs stay distinct', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, unit: 'binary' }), fc.string({ minLength: 1, unit: 'binary' }), (a, b) => {
        const ea = safePathComponent(a);
        assert.ok(!ea.includes('/') && !ea.includes('\\') && !ea.includes('\u0000'));
        assert.ok(ea !== '.' && ea !== '..' && !ea.startsWith('.'));
        if (a !== b) assert.notEqual(ea, safePathComponent(b));
      }),
    );
  });

  test('maildirPath always lands two levels under the mail root', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, unit: 'binary' }), (local) => {
        const path = maildirPath('/srv/mail', `${local}@example.test`);
        assert.equal(relative('/srv/mail', path).split(sep).length, 2);
      }),
    );
  });
});

test('deliveries into one Maildir: 2 while clients are sending, 8 once none has for 100 ms', () => {
  let now = 0;
  const accepting = new RecentActivity(() => now);
  assert.equal(deliveriesPerMaildir(undefined), 2, 'nothing to go by: the narrow limit');
  assert.equal(deliveriesPerMaildir(accepting), 8, 'nothing accepted yet');
  accepting.mark();
  now += 50;
  assert.equal(deliveriesPerMaildir(accepting), 2);
  now += 50;
  assert.equal(deliveriesPerMaildir(accepting), 8);
});
