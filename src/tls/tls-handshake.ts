// Server-side TLS on an accepted TCP socket: used at connect for implicit TLS (RFC 8314) and after
// "220 Ready to start TLS" for STARTTLS (RFC 3207).

import type net from 'node:net';
import tls from 'node:tls';
import type { TlsInfo } from '../mail/tls-info.js';

/** The certificates to choose from for one handshake (ServerCertificates). */
export interface HandshakeCertificates {
  /** Served when the client sends no server name (SNI) or one we hold no certificate for. */
  readonly defaultContext: tls.SecureContext;
  contextFor(serverName: string): tls.SecureContext;
}

/**
 * Wraps `socket` and resolves once the handshake is done. The caller must have removed its own
 * 'data' listener first: from here on every byte read from the socket goes to the TLS layer, so
 * plaintext a client pipelined after STARTTLS can only break the handshake, never reach the
 * session (CVE-2011-0411). Rejects on a failed or timed-out handshake, with the socket destroyed.
 */
export function tlsHandshake(
  socket: net.Socket,
  certificates: HandshakeCertificates,
  timeoutMs: number,
): Promise<tls.TLSSocket> {
  socket.pause();
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: certificates.defaultContext,
    // RFC 6066 section 3: the name the client wants picks the certificate.
    SNICallback: (serverName, done) => done(null, certificates.contextFor(serverName)),
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
  const version = secure.getProtocol() ?? 'unknown';
  return {
    version,
    cipher: secure.getCipher()?.name ?? 'unknown',
    // RFC 9266: tls-exporter binding for SCRAM-*-PLUS, defined for TLS 1.3 only (its section 3);
    // in TLS 1.3 an empty context and no context give the same exporter (RFC 8446 7.5).
    channelBinding:
      version === 'TLSv1.3' ? secure.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)) : undefined,
  };
}

function ignore(): void {}
