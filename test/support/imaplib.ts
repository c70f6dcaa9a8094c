// Python's imaplib as the IMAP client of the end-to-end tests: a dialogue is given as Python
// statements with `m` bound to an IMAP4_SSL connection (implicit TLS, RFC 8314) and `log(x)`
// collecting results; the results come back as JSON. An IMAP error ends the dialogue with
// "error: <server text>" as the last entry.

import assert from 'node:assert/strict';
import { requireTool, runTool } from './external-tool.js';

export interface ImaplibOptions {
  /** Connect from this loopback address (Dovecot slows down repeated failures per client IP). */
  readonly sourceAddress?: string;
  /** PEM file of the certificate the server must present (else no certificate check). */
  readonly caFile?: string;
}

export async function imaplib(port: number, body: string, options: ImaplibOptions = {}): Promise<unknown[]> {
  requireTool('python3', 'python3');
  const script = `
import imaplib, json, socket, ssl, time
out = []
def plain(x):
    if isinstance(x, bytes):
        return x.decode('latin1')
    if isinstance(x, (list, tuple)):
        return [plain(i) for i in x]
    return x
def log(x):
    out.append(plain(x))
ctx = ssl.create_default_context()
ctx.check_hostname = False
${options.caFile === undefined ? 'ctx.verify_mode = ssl.CERT_NONE' : `ctx.load_verify_locations(${JSON.stringify(options.caFile)})`}
source = ${JSON.stringify(options.sourceAddress ?? '')}
class Client(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(source, 0) if source else None)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)
m = Client('127.0.0.1', ${port}, ssl_context=ctx, timeout=30)
try:
${body
  .trim()
  .split('\n')
  .map((line) => `    ${line}`)
  .join('\n')}
except imaplib.IMAP4.error as e:
    reason = e.args[0]
    log('error: ' + (reason.decode('latin1') if isinstance(reason, bytes) else str(reason)))
print(json.dumps(out))
`;
  const run = await runTool('python3', ['-c', script]);
  assert.equal(run.code, 0, `python3 failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as unknown[];
}
