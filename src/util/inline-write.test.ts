import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { byteLength, remainingAfter, writevAllSync } from './inline-write.js';

test('remainingAfter is what follows the first n bytes, for any split into buffers', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 8 }), fc.nat(), (parts, k) => {
      const buffers = parts.map((p) => Buffer.from(p));
      const whole = Buffer.concat(buffers);
      const n = whole.length === 0 ? 0 : k % (whole.length + 1);
      const rest = remainingAfter(buffers, n);
      assert.ok(Buffer.concat(rest).equals(whole.subarray(n)));
      assert.ok(rest.every((b) => b.length > 0), 'no empty buffers left to write');
      assert.equal(byteLength(rest), whole.length - n);
    }),
  );
});

test('writevAllSync writes every buffer at the position, or at the offset with null', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-inline-'));
  try {
    const path = join(dir, 'f');
    const fd = openSync(path, 'w+');
    writevAllSync(fd, [Buffer.from('hello '), Buffer.from('world')], null);
    writevAllSync(fd, [Buffer.from('W'), Buffer.from('O')], 6);
    writevAllSync(fd, [Buffer.from('!')], null);
    closeSync(fd);
    assert.equal(readFileSync(path, 'utf8'), 'hello WOrld!');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
