import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Maildirs } from '../delivery/local/maildir.js';
import { maildirPath } from './maildir-path.js';
import { MaildirMaildrops, baseName, uidlOf, withCrlf } from './maildrop.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function mailRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'postern-maildrop-'));
  roots.push(root);
  return root;
}

const ALICE = 'alice@example.test';

describe('MaildirMaildrops', () => {
  test('the maildrop is the INBOX only: mail filed in the Junk folder is not offered over POP3', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    await maildirs.deliver(ALICE, 'a@remote.test', Buffer.from('Subject: inbox\r\n\r\n'));
    await maildirs.deliver(ALICE, 'b@remote.test', Buffer.from('Subject: junk\r\n\r\n'), { folder: 'Junk' });
    const drop = await new MaildirMaildrops(root).open(ALICE);
    assert.ok(drop !== 'in-use');
    assert.equal(drop.messages.length, 1);
    assert.match((await drop.read(0)).toString('latin1'), /Subject: inbox/);
    drop.release();
  });

  test('lists new/ and cur/ oldest first; sizes are the octets read gives, with CRLF', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    await maildirs.deliver(ALICE, 'a@remote.test', Buffer.from('Subject: one\r\n\r\nfirst\r\n'));
    await maildirs.deliver(ALICE, 'b@remote.test', Buffer.from('Subject: two\r\n\r\nsecond\r\n'));
    // A file from another writer, with LF line ends and no W=.
    const cur = join(maildirPath(root, ALICE), 'cur');
    writeFileSync(join(cur, '9999999999.M1P1Q1.other:2,S'), 'Subject: three\n\nthird\n');

    const drop = await new MaildirMaildrops(root).open(ALICE);
    assert.ok(drop !== 'in-use');
    assert.equal(drop.messages.length, 3);
    for (let i = 0; i < 3; i++) {
      const bytes = await drop.read(i);
      assert.equal(drop.messages[i]?.size, bytes.length, `message ${i + 1}: size is what RETR sends`);
      assert.doesNotMatch(bytes.toString('latin1'), /(^|[^\r])\n/, 'only CRLF line ends');
    }
    assert.match((await drop.read(0)).toString(), /Subject: one/);
    assert.equal((await drop.read(2)).toString(), 'Subject: three\r\n\r\nthird\r\n');
    drop.release();
  });

  test('a UIDL survives a move from new/ to cur/ and a flag change, and is a valid one', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    const path = await maildirs.deliver(ALICE, 'a@remote.test', Buffer.from('Subject: x\r\n\r\ny\r\n'));
    const maildrops = new MaildirMaildrops(root);
    const first = await maildrops.open(ALICE);
    assert.ok(first !== 'in-use');
    const uidl = first.messages[0]?.uidl;
    first.release();
    assert.match(uidl ?? '', /^[\x21-\x7e]{1,70}$/);

    const dir = maildirPath(root, ALICE);
    renameSync(path, join(dir, 'cur', `${basename(path)}:2,S`));
    const second = await maildrops.open(ALICE);
    assert.ok(second !== 'in-use');
    assert.equal(second.messages[0]?.uidl, uidl);
    second.release();
    renameSync(join(dir, 'cur', `${basename(path)}:2,S`), join(dir, 'cur', `${basename(path)}:2,RS`));
    const third = await maildrops.open(ALICE);
    assert.ok(third !== 'in-use');
    assert.equal(third.messages[0]?.uidl, uidl);
    third.release();
  });

  test('UIDLs that would be too long or hold a space are digests', () => {
    assert.equal(uidlOf('123.M4P5Q6.host,S=10,W=10'), '123.M4P5Q6.host,S=10,W=10');
    const long = uidlOf(`123.M4P5Q6.${'h'.repeat(80)}`);
    assert.match(long, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(uidlOf('a b'), 'a b');
    assert.equal(baseName('123.M4.host,S=1:2,FS'), '123.M4.host,S=1');
  });

  test('one session at a time; commit deletes, release does not', async () => {
    const root = mailRoot();
    const maildirs = new Maildirs(root, 'mx.example.test');
    await maildirs.deliver(ALICE, 'a@remote.test', Buffer.from('Subject: a\r\n\r\n1\r\n'));
    await maildirs.deliver(ALICE, 'a@remote.test', Buffer.from('Subject: b\r\n\r\n2\r\n'));
    const maildrops = new MaildirMaildrops(root);
    const holder = await maildrops.open(ALICE);
    assert.ok(holder !== 'in-use');
    assert.equal(await maildrops.open(ALICE), 'in-use');
    holder.release();
    const next = await maildrops.open(ALICE);
    assert.ok(next !== 'in-use');
    assert.equal(next.messages.length, 2, 'release deleted nothing');
    await next.commit([0]);
    const after = await maildrops.open(ALICE);
    assert.ok(after !== 'in-use', 'commit released the lock');
    assert.equal(after.messages.length, 1);
    assert.match((await after.read(0)).toString(), /Subject: b/);
    after.release();
  });

  test('a mailbox nothing was delivered to is empty, not an error', async () => {
    const root = mailRoot();
    const drop = await new MaildirMaildrops(root).open('nobody@example.test');
    assert.ok(drop !== 'in-use');
    assert.equal(drop.messages.length, 0);
    drop.release();
    mkdirSync(join(maildirPath(root, ALICE), 'new'), { recursive: true });
    assert.equal(existsSync(join(maildirPath(root, ALICE), 'cur')), false);
    const other = await new MaildirMaildrops(root).open(ALICE);
    assert.ok(other !== 'in-use');
    assert.equal(other.messages.length, 0);
    other.release();
    assert.deepEqual(readdirSync(join(maildirPath(root, ALICE), 'new')), []);
  });

  test('withCrlf: bare LFs become CRLF, CRLF stays', () => {
    assert.equal(withCrlf(Buffer.from('a\nb\r\nc\n')).toString(), 'a\r\nb\r\nc\r\n');
    const already = Buffer.from('a\r\n');
    assert.equal(withCrlf(already), already);
  });
});
