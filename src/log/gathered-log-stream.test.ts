import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GatheredLogStream, type LineSink } from './gathered-log-stream.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-gathered-log-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Records what reaches it, as SonicBoom would receive it. */
class RecordingSink implements LineSink {
  readonly fd = -1;
  readonly writes: string[] = [];
  flushes = 0;
  write(data: string): boolean {
    this.writes.push(data);
    return true;
  }
  flush(cb?: (err?: Error) => void): void {
    this.flushes++;
    cb?.();
  }
  flushSync(): void {}
}

const GATHER_MS = 30;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('the lines of a gathering reach the file stream in one write, in order, once it is over', async () => {
  const sink = new RecordingSink();
  const stream = new GatheredLogStream(sink, GATHER_MS);
  for (let i = 0; i < 50; i++) stream.write(`line ${i}\n`);
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 50; i < 100; i++) stream.write(`line ${i}\n`);
  assert.deepEqual(sink.writes, [], 'nothing is written before the gathering is over');
  await sleep(GATHER_MS * 3);
  assert.equal(sink.writes.length, 1);
  assert.equal(sink.writes[0], Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(''));
  stream.write('later\n');
  await sleep(GATHER_MS * 3);
  assert.deepEqual(sink.writes.slice(1), ['later\n']);
  await sleep(GATHER_MS * 2);
  assert.equal(sink.writes.length, 2, 'a gathering without lines writes nothing');
});

test('flush hands over the gathered lines first', () => {
  const sink = new RecordingSink();
  const stream = new GatheredLogStream(sink, GATHER_MS);
  stream.write('a\n');
  stream.write('b\n');
  let flushed = false;
  stream.flush(() => (flushed = true));
  assert.deepEqual(sink.writes, ['a\nb\n']);
  assert.equal(sink.flushes, 1, "then SonicBoom's own flush");
  assert.ok(flushed);
});

/**
 * Runs `body` in a child process whose `log` is a JSON logger writing to `file`; the child's exit
 * status, and the file's lines parsed.
 */
function logInChild(file: string, body: readonly string[]): { status: number; lines: Record<string, unknown>[] } {
  const logger = fileURLToPath(new URL('./logger.js', import.meta.url));
  const script = [
    `import { createLogger } from ${JSON.stringify(logger)};`,
    `const log = createLogger({ level: 'info', format: 'json', destination: ${JSON.stringify(file)} });`,
    ...body,
  ].join('\n');
  let status = 0;
  try {
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  } catch (err) {
    status = (err as { status?: number }).status ?? -1;
  }
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status, lines };
}

// The lines logged just before process.exit() or an uncaught exception are the ones an operator
// needs: they must be in the file although the gathering never ended.
for (const ending of ['exit', 'throw'] as const) {
  test(`the JSON log keeps the lines gathered when the process ends (${ending})`, () => {
    const { status, lines } = logInChild(path.join(tmp, `${ending}.log`), [
      `for (let i = 0; i < 500; i++) log.info({ i }, 'earlier');`,
      `await new Promise((r) => setTimeout(r, 50));`,
      `for (let i = 0; i < 3; i++) log.info({ i }, 'last');`,
      ending === 'exit' ? 'process.exit(3);' : `throw new Error('the end');`,
    ]);
    assert.equal(status, ending === 'exit' ? 3 : 1);
    assert.equal(lines.length, 503);
    assert.deepEqual(lines.slice(-3).map((l) => [l.msg, l.i]), [['last', 0], ['last', 1], ['last', 2]]);
  });
}

test('a process with nothing else to do ends at once, its gathered lines written', () => {
  const { status, lines } = logInChild(path.join(tmp, 'ends.log'), [`log.info('only line');`]);
  assert.equal(status, 0);
  assert.deepEqual(lines.map((l) => l.msg), ['only line']);
  assert.match(String(lines[0]?.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});
