// DKIM private keys on disk: one PKCS#8 PEM file per (domain, selector), named
// "<domain>.<selector>.key" in [dkim] keys_dir. The algorithm is read from the key itself, so an
// operator can switch a domain from RSA to Ed25519 by generating a key under a new selector.

import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Config } from '../config/schema.js';
import { normalizeDomain } from '../mail/address.js';

export type DkimAlgorithm = 'ed25519' | 'rsa';

/** RFC 8301 section 3.2: signers MUST use RSA keys of at least 1024 bits; 2048 is today's norm. */
const RSA_BITS = 2048;

export interface DkimKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  readonly privateKey: KeyObject;
}

/** [dkim] keys_dir made absolute: "" is <data_dir>/dkim, a relative path lies under data_dir. */
export function dkimKeysDir(config: Config): string {
  const dir = config.dkim.keys_dir;
  if (dir === '') return join(config.data_dir, 'dkim');
  return isAbsolute(dir) ? dir : join(config.data_dir, dir);
}

/**
 * The key file of a domain. The domain is normalized first (lower case, A-labels), so that
 * "Example.TEST" and "example.test." find the same file and no name can reach outside keys_dir.
 */
export function dkimKeyPath(keysDir: string, domain: string, selector: string): string {
  const name = normalizeDomain(domain);
  if (name === undefined) throw new Error(`"${domain}" is not a valid domain name`);
  return join(keysDir, `${name}.${selector}.key`);
}

/** A new private key as PKCS#8 PEM, the format `openssl genpkey` writes too. */
export function generateDkimPrivateKey(algorithm: DkimAlgorithm): string {
  const { privateKey } =
    algorithm === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('rsa', { modulusLength: RSA_BITS, publicExponent: 0x10001 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Parses a key file's text; throws if it is not an RSA or Ed25519 private key. */
export function parseDkimKey(pem: string | Buffer, domain: string, selector: string): DkimKey {
  const privateKey = createPrivateKey(pem);
  const type = privateKey.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ed25519') {
    throw new Error(`the DKIM key of ${domain} is ${type ?? 'of an unknown type'}; DKIM uses rsa or ed25519 keys`);
  }
  return { domain, selector, algorithm: type, privateKey };
}

/**
 * The key that signs the domain's mail under `selector` (default: [dkim] selector), read from
 * the same file the signer reads; undefined when there is none.
 */
export function readDkimKey(config: Config, domain: string, selector = config.dkim.selector): DkimKey | undefined {
  let pem: Buffer;
  try {
    pem = readFileSync(dkimKeyPath(dkimKeysDir(config), domain, selector));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseDkimKey(pem, domain, selector);
}
