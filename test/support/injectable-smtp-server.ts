// A deliberately broken SMTP server for one test: it keeps what a client pipelined behind
// STARTTLS and runs it after the TLS handshake, as servers hit by CVE-2011-0411 did. No Debian
// package ships a server with this bug any more, so `postern probe`'s STARTTLS injection check
// needs this one to show that it reports the bug. It answers only what the probe asks before
// STARTTLS (EHLO, QUIT) and NOOP after.

import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export class InjectableSmtpServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(tls: { cert: string; key: string }, hostname: string): Promise<InjectableSmtpServer> {
    const server = createServer((socket) => serve(socket, tls, hostname));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    return new InjectableSmtpServer(server, typeof address === 'object' && address ? address.port : 0);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function serve(plain: Socket, tls: { cert: string; key: string }, hostname: string): void {
  let stream: Socket = plain;
  let buffered = '';
  let secure = false;
  plain.on('error', () => undefined);
  const answer = (line: string): void => {
    const verb = line.split(' ')[0]?.toUpperCase();
    if (verb === 'EHLO') stream.write(`250-${hostname}\r\n250-PIPELINING\r\n${secure ? '' : '250-STARTTLS\r\n'}250 8BITMIME\r\n`);
    else if (verb === 'NOOP') stream.write('250 2.0.0 OK\r\n');
    else if (verb === 'QUIT') {
      stream.write('221 2.0.0 Bye\r\n');
      stream.end();
    } else if (verb === 'STARTTLS' && !secure) {
      stream.write('220 2.0.0 Ready to start TLS\r\n');
      plain.removeAllListeners('data');
      const upgraded = new TLSSocket(plain, { isServer: true, cert: tls.cert, key: tls.key });
      upgraded.on('error', () => undefined);
      stream = upgraded;
      secure = true;
      // The bug: the rest of the plain-text buffer is kept and read as if it came over TLS.
      upgraded.once('secure', () => drain());
      upgraded.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        drain();
      });
      return;
    } else stream.write('502 5.5.1 Not implemented\r\n');
  };
  const drain = (): void => {
    for (let at = buffered.indexOf('\r\n'); at >= 0; at = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 2);
      const wasSecure = secure;
      answer(line);
      if (!wasSecure && secure) return; // the rest waits for the handshake
    }
  };
  plain.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    drain();
  });
  plain.write(`220 ${hostname} ESMTP\r\n`);
}
