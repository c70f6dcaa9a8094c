import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectorySync } from './dir-sync.js';

test('callers that ask while no fsync has started share one; later callers get the next', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-dirsync-'));
  try {
    const sync = new DirectorySync(dir);
    const a = sync.sync();
    const b = sync.sync();
    assert.equal(a, b, 'both asked before the fsync started');
    await a;
    const c = sync.sync();
    assert.notEqual(c, a, 'asked after the first fsync ran');
    await c;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an fsync of a missing directory rejects, and the next one still runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-dirsync-'));
  const sync = new DirectorySync(join(dir, 'gone'));
  await assert.rejects(sync.sync(), /ENOENT/);
  rmSync(dir, { recursive: true, force: true });
  await assert.rejects(sync.sync(), /ENOENT/);
});
