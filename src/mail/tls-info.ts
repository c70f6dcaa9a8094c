// What a connection's TLS negotiated, as the session, the Received header, the log and SCRAM-PLUS
// see it. Filled in by src/tls/ after the handshake; no I/O here.

/** TLS facts of a connection, once TLS is up. */
export interface TlsInfo {
  readonly version: string; // e.g. "TLSv1.3"
  readonly cipher: string; // e.g. "TLS_AES_256_GCM_SHA384"
  /**
   * RFC 9266 tls-exporter channel binding (32 octets, label "EXPORTER-Channel-Binding") for
   * SCRAM-*-PLUS. Only with TLS 1.3: on TLS 1.2 the exporter lacks the extended master secret
   * guarantee (RFC 9266 3), so it is left undefined and -PLUS is not offered.
   */
  readonly channelBinding?: Buffer | undefined;
}
