// The certificates the server presents: [tls] cert/key (or the generated self-signed one) and
// every [[tls.certificates]] entry, chosen per handshake by the name the client asks for (SNI).
//
// They are re-read on SIGHUP and whenever a file in their directories changes, so a renewed
// certificate is served without a restart. Only new handshakes see the new contexts: sessions
// already in TLS keep theirs and are never dropped. A file that fails to load (a half-written
// renewal, a key that does not match) costs one log line; that certificate's previous context
// stays in service.

import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { directoriesOf, FileWatcher } from './file-watcher.js';
import { SniTable } from './sni-table.js';
import { firstLine } from '../util/startup-error.js';
import type { HandshakeCertificates } from './tls-handshake.js';
import {
  certificateNames,
  createSecureContext,
  generatedPaths,
  loadCertificateFiles,
  loadTlsCredentials,
  warnIfExpired,
  type FileOwner,
  type TlsCredentials,
} from './tls-credentials.js';

/** Long enough to take a key and a certificate written one after the other as one change. */
const DEFAULT_DEBOUNCE_MS = 250;

export interface ServerCertificatesOptions {
  /** Who should own a generated certificate (the service account, when we start as root). */
  readonly owner?: FileOwner;
  /** Reload when the files change (default true). */
  readonly watch?: boolean;
  readonly debounceMs?: number;
  /** Called after a reload that changed what is served (the primary hands it to the workers). */
  readonly onChange?: () => void;
}

/**
 * The certificates as data: what a primary process, which may read root-only keys, hands to its
 * unprivileged workers (src/server/workers.ts), which build the same contexts from it.
 */
export interface CertificateSnapshot {
  readonly credentials: TlsCredentials;
  readonly configuredNames: readonly string[] | undefined;
}

/** What the server presents for one certificate. */
export interface PresentedCertificate {
  readonly certPath: string;
  readonly keyPath: string;
  readonly names: readonly string[];
  /** The end of its validity, ISO 8601. */
  readonly validTo: string;
  /** The self-signed certificate generated for hostname, which clients that verify refuse. */
  readonly generated: boolean;
}

/** Where one certificate comes from in the config. */
interface CertificateSource {
  /** How errors name it: "tls" or "tls.certificates[2]". */
  readonly label: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** Configured names; undefined: the certificate's own. */
  readonly names: readonly string[] | undefined;
  load(logger: Logger, owner: FileOwner | undefined): Promise<TlsCredentials>;
}

interface LoadedCertificate {
  readonly credentials: TlsCredentials;
  /** The names it serves: configured, or read from the certificate. */
  readonly names: readonly string[];
  readonly configuredNames: readonly string[] | undefined;
  readonly context: tls.SecureContext;
  readonly x509: X509Certificate;
}

/** The default first. */
interface Loaded {
  readonly first: LoadedCertificate;
  readonly rest: readonly LoadedCertificate[];
}

export class ServerCertificates implements HandshakeCertificates {
  private table: SniTable<LoadedCertificate>;
  private loaded: Loaded;
  private watcher: FileWatcher | undefined;
  private reloading: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private config: Config,
    loaded: Loaded,
    private readonly logger: Logger,
    private readonly options: ServerCertificatesOptions,
  ) {
    this.loaded = loaded;
    this.table = tableOf(loaded);
    this.rewatch();
  }

  /** Loads every certificate; any problem is a StartupError (one line naming the file). */
  static async load(config: Config, logger: Logger, options: ServerCertificatesOptions = {}): Promise<ServerCertificates> {
    const [main, ...others] = sourcesOf(config);
    const load = async (source: CertificateSource): Promise<LoadedCertificate> => {
      const credentials = await source.load(logger, options.owner);
      warnIfExpired(credentials, logger);
      return build(credentials, source);
    };
    const first = await load(main);
    const rest: LoadedCertificate[] = [];
    for (const source of others) rest.push(await load(source));
    return new ServerCertificates(config, { first, rest }, logger, options);
  }

  /** Built from a primary's snapshot: nothing is read from disk and nothing watched. */
  static fromSnapshot(config: Config, snapshot: readonly CertificateSnapshot[], logger: Logger): ServerCertificates {
    return new ServerCertificates(config, loadedOf(snapshot), logger, { watch: false });
  }

  /** What is served now, as data to rebuild it elsewhere (see fromSnapshot). */
  snapshot(): CertificateSnapshot[] {
    return all(this.loaded).map((c) => ({ credentials: c.credentials, configuredNames: c.configuredNames }));
  }

  /** Serves a primary's newer snapshot; a certificate that fails to build keeps the old set. */
  replace(config: Config, snapshot: readonly CertificateSnapshot[]): void {
    try {
      this.loaded = loadedOf(snapshot);
    } catch (err) {
      this.logger.error({ err: firstLine(err instanceof Error ? err.message : String(err)) }, 'TLS certificates not replaced');
      return;
    }
    this.config = config;
    this.table = tableOf(this.loaded);
  }

  get defaultContext(): tls.SecureContext {
    return this.table.fallback.context;
  }

  contextFor(serverName: string): tls.SecureContext {
    return this.table.select(serverName).context;
  }

  /**
   * Whether a client that connects to `name` (and sends it as SNI) gets a certificate valid for
   * it: the SNI choice above, then the check the client makes (RFC 6125 section 6.4: its DNS
   * names, "*" covering one label; the CN only when it has none).
   */
  covers(name: string): boolean {
    return this.table.select(name).x509.checkHost(name) !== undefined;
  }

  /** What is served now, the default first. */
  get presented(): readonly PresentedCertificate[] {
    return all(this.loaded).map(({ credentials, names, x509 }) => ({
      certPath: credentials.certPath,
      keyPath: credentials.keyPath,
      names,
      validTo: new Date(x509.validTo).toISOString(),
      generated: credentials.generated,
    }));
  }

  /**
   * Re-reads every certificate, with a new config (SIGHUP) or the current one (a file changed).
   * Never throws: what cannot be loaded is logged and its previous context kept.
   */
  reload(config: Config = this.config): Promise<void> {
    // Chained, so two reloads never interleave; caught, so a fault of ours cannot stop later
    // reloads or crash the server from the file watcher's callback.
    this.reloading = this.reloading
      .then(() => this.rebuild(config))
      .catch((err: unknown) => this.logger.error({ err }, 'TLS certificate reload failed'));
    return this.reloading;
  }

  /** Stops watching the files (server shutdown). */
  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private async rebuild(config: Config): Promise<void> {
    if (this.closed) return;
    const current = all(this.loaded);
    const previous = new Map(current.map((c) => [pathsKey(c.credentials), c]));
    const next: LoadedCertificate[] = [];
    let changed = false;
    for (const source of sourcesOf(config)) {
      const old = previous.get(pathsKey(source));
      try {
        // No owner on reload: by now we run as the service account, which owns what it writes.
        const credentials = await source.load(this.logger, undefined);
        if (old && unchanged(old, credentials, source)) {
          next.push(old);
          continue;
        }
        next.push(build(credentials, source));
        warnIfExpired(credentials, this.logger);
        changed = true;
      } catch (err) {
        this.logger.error(
          { cert: source.certPath, key: source.keyPath, err: firstLine(err instanceof Error ? err.message : String(err)) },
          old ? 'TLS certificate reload failed; keeping the previous one' : 'TLS certificate not loaded',
        );
        if (old) next.push(old);
      }
    }
    if (this.closed) return;
    const [first, ...rest] = next;
    if (first === undefined) {
      this.logger.error('no TLS certificate could be loaded; keeping the previous ones');
      return;
    }
    changed ||= next.length !== current.length || next.some((c, i) => c !== current[i]);
    this.config = config;
    this.loaded = { first, rest };
    this.table = tableOf(this.loaded);
    this.rewatch();
    if (changed) {
      this.logger.info({ certificates: this.presented }, 'TLS certificates reloaded');
      this.options.onChange?.();
    }
  }

  /** Watches the directories of the current files; a config reload may have moved them. */
  private rewatch(): void {
    if (this.closed || this.options.watch === false) return;
    const files = all(this.loaded).flatMap((c) => [c.credentials.certPath, c.credentials.keyPath]);
    if (this.watcher && sameList(this.watcher.directories, directoriesOf(files))) return;
    this.watcher?.close();
    this.watcher = new FileWatcher(files, () => void this.reload(), {
      debounceMs: this.options.debounceMs ?? DEFAULT_DEBOUNCE_MS,
      logger: this.logger,
    });
  }
}

/**
 * The default comes first: [tls] cert/key when set, else the first [[tls.certificates]] entry,
 * else the self-signed certificate generated for hostname.
 */
/** The default certificate first; there is always one (configured, or generated). */
function sourcesOf(config: Config): [CertificateSource, ...CertificateSource[]] {
  const { tls } = config;
  const entries = tls.certificates.map(
    (entry, i): CertificateSource => ({
      label: `tls.certificates[${i}]`,
      certPath: entry.cert,
      keyPath: entry.key,
      names: entry.names,
      load: () => loadCertificateFiles(entry.cert, entry.key, `tls.certificates[${i}]`),
    }),
  );
  const [firstEntry, ...otherEntries] = entries;
  if (tls.cert === undefined && firstEntry !== undefined) return [firstEntry, ...otherEntries];
  const paths = tls.cert !== undefined && tls.key !== undefined ? { certPath: tls.cert, keyPath: tls.key } : generatedPaths(config.data_dir);
  const main: CertificateSource = {
    label: 'tls',
    ...paths,
    names: undefined,
    load: (logger, owner) => loadTlsCredentials(config, logger, owner),
  };
  return [main, ...entries];
}

function build(credentials: TlsCredentials, source: { readonly names: readonly string[] | undefined }): LoadedCertificate {
  const context = createSecureContext(credentials);
  const names = source.names ?? certificateNames(credentials.cert);
  return { credentials, names, configuredNames: source.names, context, x509: new X509Certificate(credentials.cert) };
}

function loadedOf(snapshot: readonly CertificateSnapshot[]): Loaded {
  const built = snapshot.map(({ credentials, configuredNames }) => build(credentials, { names: configuredNames }));
  const [first, ...rest] = built;
  if (first === undefined) throw new Error('no certificate in the snapshot');
  return { first, rest };
}

function all(loaded: Loaded): LoadedCertificate[] {
  return [loaded.first, ...loaded.rest];
}

function tableOf(loaded: Loaded): SniTable<LoadedCertificate> {
  const entry = (c: LoadedCertificate): { names: readonly string[]; value: LoadedCertificate } => ({ names: c.names, value: c });
  return new SniTable(entry(loaded.first), loaded.rest.map(entry));
}

/** Same files, same content, same configured names: the old context can stay. */
function unchanged(old: LoadedCertificate, fresh: TlsCredentials, source: CertificateSource): boolean {
  const names = old.configuredNames === undefined || source.names === undefined
    ? old.configuredNames === source.names
    : sameList(old.configuredNames, source.names);
  return names && old.credentials.cert === fresh.cert && old.credentials.key === fresh.key;
}

function pathsKey(c: { readonly certPath: string; readonly keyPath: string }): string {
  return `${c.certPath}\n${c.keyPath}`;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
