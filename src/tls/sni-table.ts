// Which certificate answers a TLS ClientHello: the server name the client sent (SNI, RFC 6066
// section 3) looked up among the names each certificate serves, the default one otherwise.
// Pure: no files, no sockets; ServerCertificates builds a new table on every (re)load.

export interface SniEntry<C> {
  /** Names as configured or read from the certificate: "mail.example.test", "*.example.test". */
  readonly names: readonly string[];
  readonly value: C;
}

export class SniTable<C> {
  /** Served when the client sends no name or one no entry claims. */
  readonly fallback: C;
  private readonly exact = new Map<string, C>();
  /** "*.example.test" is stored under "example.test". */
  private readonly wildcard = new Map<string, C>();

  /** `first` is the default; for a name two entries claim, the earlier one wins. */
  constructor(first: SniEntry<C>, rest: readonly SniEntry<C>[] = []) {
    this.fallback = first.value;
    for (const entry of [first, ...rest]) {
      for (const raw of entry.names) {
        const name = canonicalName(raw);
        if (name.startsWith('*.')) {
          if (!this.wildcard.has(name.slice(2))) this.wildcard.set(name.slice(2), entry.value);
        } else if (!this.exact.has(name)) {
          this.exact.set(name, entry.value);
        }
      }
    }
  }

  /**
   * An exact name first, then a wildcard for the parent domain. A wildcard covers exactly one
   * label (RFC 6125 section 6.4.3): "*.example.test" serves a.example.test, not example.test and
   * not a.b.example.test, the same rule the client applies when it checks the certificate.
   */
  select(serverName: string | undefined): C {
    if (serverName === undefined || serverName === '') return this.fallback;
    const name = canonicalName(serverName);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const parent = this.wildcard.get(name.slice(dot + 1));
      if (parent !== undefined) return parent;
    }
    return this.fallback;
  }
}

/** DNS names compare case-insensitively (RFC 4343); a trailing root dot changes nothing. */
function canonicalName(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
