// Server-side TLS on an accepted TCP socket: used at connect for implicit TLS (RFC 8314) and after
// "220 Ready to start TLS" for STARTTLS (RFC 3207).

import type net from 'node:net';
import tls from 'node:tls';
import type { TlsInfo } from '../smtp/session-host.js';

/**
 * Wraps `socket` and resolves once the handshake is done. The caller must have removed its own
 * 'data' listener first: from here on every byte read from the socket goes to the TLS layer, so
 * plaintext a client pipelined after STARTTLS can only break the handshake, never reach the
 * session (CVE-2011-0411). Rejects on a failed or timed-out handshake, with the socket destroyed.
 */
export function tlsHandshake(
  socket: net.Socket,
  secureContext: tls.SecureContext,
  timeoutMs: number,
): Promise<tls.TLSSocket> {
  socket.pause();
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext,
    requestCert: false,
    rejectUnauthorized: false,
  });
  // Always one listener, so an error racing the caller's own listener can never crash the process.
  secure.on('error', ignore);
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      settle();
      secure.destroy();
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error): void => fail(err);
    const onClose = (): void => fail(new Error('connection closed during the TLS handshake'));
    const onSecure = (): void => {
      settle();
      resolve(secure);
    };
    const timer = setTimeout(() => fail(new Error('TLS handshake timed out')), timeoutMs);
    const settle = (): void => {
      clearTimeout(timer);
      secure.off('error', onError);
      secure.off('close', onClose);
      secure.off('secure', onSecure);
    };
    secure.on('error', onError);
    secure.on('close', onClose);
    secure.on('secure', onSecure);
  });
}

export function tlsInfoOf(secure: tls.TLSSocket): TlsInfo {
  return { version: secure.getProtocol() ?? 'unknown', cipher: secure.getCipher()?.name ?? 'unknown' };
}

function ignore(): void {}
