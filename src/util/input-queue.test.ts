import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InputQueue } from './input-queue.js';

const noFlow = { pause: () => {}, resume: () => {} };

/** Everything the queue holds, read from its chunks as a session would. */
function drain(queue: InputQueue): string {
  let out = '';
  for (let next = queue.peek(); next; next = queue.peek()) {
    out += next.chunk.subarray(next.offset).toString();
    queue.consume(next.chunk.length - next.offset);
  }
  return out;
}

describe('InputQueue', () => {
  test("keep() copies what is unread of the caller's chunks, so the caller may reuse their memory", () => {
    const queue = new InputQueue(noFlow);
    const memory = Buffer.from('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n');
    queue.push(memory);
    queue.consume(17); // the MAIL command was acted on
    queue.keep();
    memory.fill(0x2a);
    assert.equal(drain(queue), 'RCPT TO:<c@d>\r\n');
  });

  test('keep() copies only the chunks pushed since the last call, and none already read', () => {
    const queue = new InputQueue(noFlow);
    const first = Buffer.from('one ');
    queue.push(first);
    queue.keep();
    first.fill(0x2a);
    const second = Buffer.from('two ');
    const third = Buffer.from('three');
    queue.push(second);
    queue.push(third);
    queue.keep();
    second.fill(0x2a);
    third.fill(0x2a);
    assert.equal(drain(queue), 'one two three');
    const read = Buffer.from('gone');
    queue.push(read);
    queue.consume(4);
    queue.keep();
    assert.equal(queue.peek(), undefined);
  });

  test('the high-water mark still pauses and resumes the flow', () => {
    const calls: string[] = [];
    const queue = new InputQueue({ pause: () => calls.push('pause'), resume: () => calls.push('resume') }, 8);
    queue.push(Buffer.from('0123456789'));
    queue.keep();
    assert.deepEqual(calls, ['pause']);
    queue.consume(5);
    queue.caughtUp();
    assert.deepEqual(calls, ['pause', 'resume']);
  });
});
