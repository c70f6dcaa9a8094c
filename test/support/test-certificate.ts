// Certificates for tests: self-signed, for the names given, made with the same package as the
// server's generated certificate (selfsigned), and written where a config can point at them.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface TestCertificate {
  readonly cert: string;
  readonly key: string;
}

/** A certificate with subject CN `commonName` and the DNS names `altNames` (none: no SAN at all). */
export async function makeCertificate(commonName: string, altNames: readonly string[] = [commonName]): Promise<TestCertificate> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      ...(altNames.length > 0
        ? [{ name: 'subjectAltName' as const, altNames: altNames.map((value) => ({ type: 2 as const, value })) }]
        : []),
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Writes <dir>/<name>.pem and <dir>/<name>.key (mode 0644: a server that dropped to nobody reads them). */
export function writeCertificate(dir: string, name: string, pems: TestCertificate): { cert: string; key: string } {
  const paths = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  writeFileSync(paths.key, pems.key, { mode: 0o644 });
  writeFileSync(paths.cert, pems.cert, { mode: 0o644 });
  return paths;
}
