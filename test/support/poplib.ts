// Python's poplib as a POP3 client of the end-to-end tests: a dialogue is given as Python
// statements with `p` bound to a POP3 connection and `log(x)` collecting results, which come back
// as JSON. The connection starts TLS with STLS (RFC 2595) unless told otherwise, or is TLS from
// the first byte (`implicitTls`, RFC 8314). A POP3 error ends the dialogue with
// "error: <server text>" as the last entry.

import assert from 'node:assert/strict';
import { requireTool, runTool } from './external-tool.js';

export interface PoplibOptions {
  /** STLS after the greeting (default true; ignored with implicitTls). */
  readonly stls?: boolean;
  /** POP3S: TLS from the first byte. */
  readonly implicitTls?: boolean;
}

export async function poplib(port: number, body: string, options: PoplibOptions = {}): Promise<unknown[]> {
  requireTool('python3', 'python3');
  const connect = options.implicitTls
    ? `p = poplib.POP3_SSL('127.0.0.1', ${port}, context=ctx, timeout=30)`
    : `p = poplib.POP3('127.0.0.1', ${port}, timeout=30)`;
  const stls = !options.implicitTls && options.stls !== false;
  const script = `
import json, poplib, ssl, sys
out = []
def log(x):
    out.append(x if not isinstance(x, bytes) else x.decode('latin1'))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
${connect}
try:
    log(p.getwelcome())
    if ${stls ? 'True' : 'False'}:
        p.stls(context=ctx)
${body
  .trim()
  .split('\n')
  .map((line) => `    ${line}`)
  .join('\n')}
except poplib.error_proto as e:
    reason = e.args[0]
    log('error: ' + (reason.decode('latin1') if isinstance(reason, bytes) else reason))
print(json.dumps(out))
`;
  const run = await runTool('python3', ['-c', script]);
  assert.equal(run.code, 0, `python3 failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as unknown[];
}
