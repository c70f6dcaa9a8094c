// SASL client messages for the fuzz targets: for each mechanism, messages that are valid for an
// account that exists, near-valid ones (one field wrong), and hostile ones, all of which may then
// be mutated (hostile.ts). SCRAM's client-final depends on the server-first it answers, so it is
// generated as a plan and made into bytes against the actual (or, for a static dialogue, the
// predicted) server-first.
//
// The oracles at the end say, from the bytes actually sent, whether a login may succeed: a
// mechanism that reports success where its oracle says no has let someone in without the secret.

import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { digest, hmac, saltedPassword, xor, type ScramHash } from '../../src/auth/scram-secrets.js';
import { normalizeAddress } from '../../src/mail/address.js';
import { encodeSaslname, formatServerFirst, parseServerFirst } from '../../src/sasl/scram-messages.js';
import { ACCOUNTS, CHANNEL_BINDING, CRAM_CHALLENGE, GHOST, PASSWORDS, SERVER_NONCE, type FuzzCredentials, type FuzzTokens, type MechanismName } from './fuzz-world.js';
import { hostileText, mutated, mutatedText } from './hostile.js';

/** A name a client may log in with: the accounts as written in many ways, strangers, junk. */
export const loginName: fc.Arbitrary<string> = fc.oneof(
  { weight: 300, arbitrary: fc.constantFrom(...ACCOUNTS) },
  {
    weight: 150,
    arbitrary: fc.constantFrom(
      'ALICE@example.test',
      'alice@EXAMPLE.TEST',
      ' alice@example.test',
      'alice@example.test ',
      'alice@example.test.',
      'alice',
      'O,DD=NAME@example.test',
      'bob@example.test',
      'alice@example.test\0',
      'alice@xn--exmple-cua.test',
      'alice@ex\u00e4mple.test',
      '"alice"@example.test',
      '',
    ),
  },
  { weight: 100, arbitrary: hostileText },
  // The full-cost decoy scrypt (fuzz-world.ts): rarely.
  { weight: 1, arbitrary: fc.constant(GHOST) },
);

/** The account a name logs in to, if it is one that exists. */
export function accountOf(name: string): string | undefined {
  const account = normalizeAddress(name);
  return account !== undefined && account in PASSWORDS ? account : undefined;
}

/** The password a client sends for `name`: right, near (case, NFD, padding), wrong, long. */
const password = (name: string): fc.Arbitrary<string> => {
  const right = PASSWORDS[accountOf(name) ?? ''] ?? 'pencil';
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(right) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(right.toUpperCase(), right.normalize('NFD'), `${right} `, right.slice(1), `${right}\0`, 'wrong', '', 'x'.repeat(1025)),
    },
    { weight: 1, arbitrary: hostileText },
  );
};

const withPassword = fc.oneof(loginName).chain((name) => fc.tuple(fc.constant(name), password(name)));

/** PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd. */
export const plainMessage: fc.Arbitrary<Buffer> = mutated(
  fc
    .tuple(withPassword, fc.oneof(fc.constant(''), fc.constant('same'), loginName), fc.constantFrom('\0', '\0\0', ''))
    .map(([[name, pass], authzid, extra]) => Buffer.from(`${authzid === 'same' ? name : authzid}\0${name}\0${pass}${extra === '\0' ? '' : extra}`)),
);

/** LOGIN: the user name, then the password, each its own response. */
export const loginMessages: fc.Arbitrary<Buffer[]> = withPassword.chain(([name, pass]) =>
  fc.tuple(mutatedText(fc.constant(name), 6), mutatedText(fc.constant(pass), 6)),
);

/** CRAM-MD5 (RFC 2195): "name HMAC-MD5(password, challenge) in hex", for the fixed challenge. */
export const cramMd5Message: fc.Arbitrary<Buffer> = mutatedText(
  fc.tuple(withPassword, fc.constantFrom('lower', 'upper', 'short', 'long', 'junk', 'none')).map(([[name, pass], form]) => {
    const hex = createHmac('md5', Buffer.from(pass)).update(CRAM_CHALLENGE).digest('hex');
    const digests = { lower: hex, upper: hex.toUpperCase(), short: hex.slice(1), long: `${hex}0`, junk: 'g'.repeat(32), none: '' };
    return `${name} ${digests[form]}`;
  }),
);

/** A SCRAM client-first-message (RFC 5802 7), in parts, so a static dialogue can predict the reply. */
export interface ScramFirst {
  readonly text: string;
  readonly username: string;
  readonly nonce: string;
}

const scramFlag = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('n', 'y', 'p=tls-exporter') },
  { weight: 1, arbitrary: fc.constantFrom('p=tls-unique', 'p=', 'p=tls-exporter,x', 'x', '', 'N', 'p=*') },
);
const clientNonce = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom('fyko+d2lbbFgONRv9qkxdawL', 'rOprNGfwEbeRWgbNEkqO', 'n') },
  { weight: 1, arbitrary: fc.constantFrom('', 'a,b', 'é', 'x'.repeat(600), ' ', '=') },
);

export const scramFirst: fc.Arbitrary<ScramFirst> = fc
  .record({
    flag: scramFlag,
    name: loginName,
    authzid: fc.constantFrom('none', 'same', 'other', 'empty', 'bad'),
    nameForm: fc.constantFrom('encoded', 'encoded', 'encoded', 'raw', 'bad-escape', 'missing'),
    nonce: clientNonce,
    extensions: fc.array(fc.constantFrom('x=1', 'm=ext', 'bogus', '', 'e=\u0000', 'z='), { maxLength: 2 }),
  })
  .map(({ flag, name, authzid, nameForm, nonce, extensions }) => {
    const az = { none: '', same: `a=${encodeSaslname(name)}`, other: 'a=bob@example.test', empty: 'a=', bad: 'a=x=y' }[authzid];
    const user = { encoded: `n=${encodeSaslname(name)}`, raw: `n=${name}`, 'bad-escape': 'n=al=ZZice', missing: '' }[nameForm];
    const attrs = [user, `r=${nonce}`, ...extensions].filter((a, i) => a !== '' || i > 0);
    return { text: `${flag},${az},${attrs.join(',')}`, username: name, nonce };
  });

/** How a client-final-message differs from the correct one (RFC 5802 7). */
export interface ScramFinalPlan {
  readonly password: 'right' | 'wrong';
  readonly binding: 'right' | 'header-only' | 'other-data' | 'not-base64' | 'missing';
  readonly nonce: 'right' | 'client-part' | 'longer' | 'missing';
  readonly proof: 'right' | 'other' | 'short' | 'not-base64' | 'missing' | 'twice';
  readonly extensions: readonly string[];
}

export const scramFinalPlan: fc.Arbitrary<ScramFinalPlan> = fc.record({
  password: fc.constantFrom('right', 'right', 'wrong'),
  binding: fc.constantFrom('right', 'right', 'right', 'header-only', 'other-data', 'not-base64', 'missing'),
  nonce: fc.constantFrom('right', 'right', 'right', 'client-part', 'longer', 'missing'),
  proof: fc.constantFrom('right', 'right', 'right', 'other', 'short', 'not-base64', 'missing', 'twice'),
  extensions: fc.array(fc.constantFrom('x=1', 'p=AAAA', 'bogus', 'r=x'), { maxLength: 1 }),
});

export interface ScramPeer {
  readonly hash: ScramHash;
  /** The client-first-message as sent. */
  readonly clientFirst: string;
  /** The server-first-message answering it. */
  readonly serverFirst: string;
  /** The account's password, when the name is one that exists. */
  readonly password: string;
}

/** The proof and server signature a correct client computes (RFC 5802 3). */
export function scramKeys(peer: ScramPeer, withoutProof: string, password: string) {
  const parsed = parseServerFirst(peer.serverFirst);
  if (typeof parsed === 'string') return undefined;
  const bare = peer.clientFirst.slice(nthIndexOf(peer.clientFirst, ',', 2) + 1);
  const salted = saltedPassword(password, peer.hash, parsed.salt, Math.min(parsed.iterations, 4096));
  const clientKey = hmac(peer.hash, salted, 'Client Key');
  const authMessage = `${bare},${peer.serverFirst},${withoutProof}`;
  const proof = xor(clientKey, hmac(peer.hash, digest(peer.hash, clientKey), authMessage));
  const serverSignature = hmac(peer.hash, hmac(peer.hash, salted, 'Server Key'), authMessage);
  return { proof, serverSignature, nonce: parsed.nonce };
}

/** The gs2 header's binding input for c= (RFC 5802 7): the header, then the data if "p=". */
function bindingInput(clientFirst: string): Buffer {
  const header = clientFirst.slice(0, nthIndexOf(clientFirst, ',', 2) + 1);
  return Buffer.concat([Buffer.from(header), header.startsWith('p=') ? CHANNEL_BINDING : Buffer.alloc(0)]);
}

/** The client-final-message a plan makes, answering `peer.serverFirst`. */
export function scramFinal(plan: ScramFinalPlan, peer: ScramPeer): string {
  const parsed = parseServerFirst(peer.serverFirst);
  const serverNonce = typeof parsed === 'string' ? 'unparsable' : parsed.nonce;
  const binding = {
    right: `c=${bindingInput(peer.clientFirst).toString('base64')}`,
    'header-only': `c=${Buffer.from(peer.clientFirst.slice(0, nthIndexOf(peer.clientFirst, ',', 2) + 1)).toString('base64')}`,
    'other-data': `c=${Buffer.concat([bindingInput(peer.clientFirst), Buffer.from('x')]).toString('base64')}`,
    'not-base64': 'c=biws=',
    missing: '',
  }[plan.binding];
  const nonce = { right: `r=${serverNonce}`, 'client-part': `r=${serverNonce.slice(0, 4)}`, longer: `r=${serverNonce}x`, missing: '' }[plan.nonce];
  const withoutProof = [binding, nonce, ...plan.extensions].filter((a) => a !== '').join(',');
  const keys = scramKeys(peer, withoutProof, plan.password === 'right' ? peer.password : 'wrong password');
  const proof = keys?.proof ?? Buffer.alloc(32);
  const proofs = {
    right: `,p=${proof.toString('base64')}`,
    other: `,p=${Buffer.alloc(proof.length, 7).toString('base64')}`,
    short: `,p=${proof.subarray(1).toString('base64')}`,
    'not-base64': ',p=!!!!',
    missing: '',
    twice: `,p=${proof.toString('base64')},p=${proof.toString('base64')}`,
  };
  return withoutProof + proofs[plan.proof];
}

/**
 * What our server answers a client-first-message for an existing account (scram.ts), so a static
 * dialogue can carry a correct client-final. Undefined when the message or the name does not fit.
 */
export function predictServerFirst(first: ScramFirst, hash: ScramHash, credentials: FuzzCredentials): string | undefined {
  const secret = credentials.scramSecret(first.username, hash);
  if (!secret) return undefined;
  return formatServerFirst({ nonce: first.nonce + SERVER_NONCE, salt: secret.salt, iterations: secret.iterations });
}

/** OAUTHBEARER (RFC 7628 3.1) and XOAUTH2 messages, with tokens valid, wrong, and mangled. */
export function bearerMessages(tokens: FuzzTokens): { oauthbearer: fc.Arbitrary<Buffer>; xoauth2: fc.Arbitrary<Buffer> } {
  const validToken = fc.constantFrom(...tokens.valid);
  const token = fc.oneof(
    { weight: 3, arbitrary: validToken.map((v) => v.token) },
    { weight: 2, arbitrary: fc.constantFrom(...tokens.invalid) },
    { weight: 1, arbitrary: validToken.chain((v) => mutatedText(fc.constant(v.token), 0).map((b) => b.toString('latin1'))) },
    { weight: 1, arbitrary: hostileText },
  );
  const user = fc.oneof(loginName, validToken.map((v) => v.account));
  const auth = token.chain((t) => fc.constantFrom(`auth=Bearer ${t}`, `auth=bearer  ${t}`, `AUTH=Bearer ${t}`, `auth=Basic ${t}`, `auth=Bearer`, `auth=${t}`));
  const end = fc.constantFrom('\x01\x01', '\x01\x01', '\x01\x01', '\x01', '', '\x01\x01\x01');
  const gs2 = fc.oneof(
    user.map((u) => `n,a=${encodeSaslname(u)},`),
    fc.constantFrom('n,,', 'y,,', 'p=tls-exporter,,', 'n,a=x=y,', 'n,', 'n,a=alice@example.test', ''),
  );
  const extras = fc.array(fc.constantFrom('host=mx.example', 'port=587', 'bogus', '=x', 'auth=Bearer x', ''), { maxLength: 2 });
  const oauthbearer = fc
    .tuple(gs2, extras, auth, extras, end)
    .map(([g, before, a, after, e]) => Buffer.from([g, ...before, a, ...after].join('\x01') + e));
  const xoauth2 = fc
    .tuple(user, auth, extras, end)
    .map(([u, a, more, e]) => Buffer.from([`user=${u}`, a, ...more].join('\x01') + e));
  return { oauthbearer: mutated(oauthbearer), xoauth2: mutated(xoauth2) };
}

// ---- oracles ------------------------------------------------------------------------------------

/** Whether PLAIN bytes carry the right password of `account` (RFC 4616 2; authzid empty or the same). */
export function plainProves(message: Buffer, account: string): boolean {
  const parts = message.toString('utf8').split('\0');
  if (parts.length !== 3) return false;
  const [authzid = '', authcid = '', pass = ''] = parts;
  return accountOf(authcid) === account && (authzid === '' || accountOf(authzid) === account) && samePassword(pass, account);
}

export function samePassword(sent: string, account: string): boolean {
  return sent.normalize('NFC') === PASSWORDS[account]?.normalize('NFC');
}

export function cramMd5Proves(message: Buffer, account: string): boolean {
  const m = /^(.+) ([0-9a-fA-F]{32})$/s.exec(message.toString('utf8'));
  if (!m || accountOf(m[1] ?? '') !== account) return false;
  const right = createHmac('md5', Buffer.from(PASSWORDS[account] ?? '')).update(CRAM_CHALLENGE).digest('hex');
  return (m[2] ?? '').toLowerCase() === right;
}

/**
 * Whether a SCRAM client-final carries the proof of `account`'s password, the server's whole
 * nonce and the right channel binding (RFC 5802 5.1, 6, 7) for `mechanism`.
 */
export function scramProves(mechanism: string, peer: ScramPeer, clientFinal: string, account: string): boolean {
  const flag = peer.clientFirst.slice(0, peer.clientFirst.indexOf(','));
  if (mechanism.endsWith('-PLUS') ? flag !== 'p=tls-exporter' : flag !== 'n' && flag !== 'y') return false;
  const proofAt = clientFinal.lastIndexOf(',p=');
  if (proofAt < 0) return false;
  const withoutProof = clientFinal.slice(0, proofAt);
  const keys = scramKeys({ ...peer, password: PASSWORDS[account] ?? '' }, withoutProof, PASSWORDS[account] ?? '');
  if (!keys) return false;
  const attrs = withoutProof.split(',');
  return (
    attrs[0] === `c=${bindingInput(peer.clientFirst).toString('base64')}` &&
    attrs[1] === `r=${keys.nonce}` &&
    clientFinal.slice(proofAt + 3) === keys.proof.toString('base64')
  );
}

export function bearerProves(message: Buffer, account: string, tokens: FuzzTokens): boolean {
  const text = message.toString('utf8');
  return tokens.valid.some((v) => v.account === account && text.includes(v.token));
}

function nthIndexOf(text: string, char: string, n: number): number {
  let at = -1;
  for (let i = 0; i < n; i++) {
    at = text.indexOf(char, at + 1);
    if (at < 0) return text.length;
  }
  return at;
}

/** The mechanisms a message generator exists for, each with its messages as a list of responses. */
export function messagesFor(name: MechanismName, credentials: FuzzCredentials, tokens: FuzzTokens): fc.Arbitrary<Buffer[]> {
  const one = (a: fc.Arbitrary<Buffer>) => a.map((b) => [b]);
  switch (name) {
    case 'PLAIN':
      return one(plainMessage);
    case 'LOGIN':
      return loginMessages;
    case 'CRAM-MD5':
      return one(cramMd5Message);
    case 'OAUTHBEARER':
      return one(bearerMessages(tokens).oauthbearer).map((m) => [...m, Buffer.from('\x01')]);
    case 'XOAUTH2':
      return one(bearerMessages(tokens).xoauth2).map((m) => [...m, Buffer.alloc(0)]);
    case 'SCRAM-SHA-1':
    case 'SCRAM-SHA-1-PLUS':
    case 'SCRAM-SHA-256':
    case 'SCRAM-SHA-256-PLUS': {
      const hash: ScramHash = name.startsWith('SCRAM-SHA-1') ? 'sha1' : 'sha256';
      // A static dialogue: the client-final is made against the server-first we predict.
      return fc.tuple(scramFirst, scramFinalPlan, mutated(fc.constant(Buffer.alloc(0)), 6)).chain(([first, plan, ack]) => {
        const serverFirst = predictServerFirst(first, hash, credentials) ?? `r=${first.nonce}${SERVER_NONCE},s=AAAA,i=2`;
        const account = accountOf(first.username);
        const final = scramFinal(plan, { hash, clientFirst: first.text, serverFirst, password: PASSWORDS[account ?? ''] ?? 'x' });
        return fc.tuple(mutatedText(fc.constant(first.text), 6), mutatedText(fc.constant(final), 6)).map(([f, c]) => [f, c, ack]);
      });
    }
  }
}

/** A correct login with each mechanism, as the lines after "AUTH <name>": the way into the deep states. */
export function validLogin(name: MechanismName, credentials: FuzzCredentials, tokens: FuzzTokens): fc.Arbitrary<Buffer[]> {
  const account = fc.constantFrom(...ACCOUNTS);
  const password = (a: string) => PASSWORDS[a] ?? '';
  switch (name) {
    case 'PLAIN':
      return account.map((a) => [Buffer.from(`\0${a}\0${password(a)}`)]);
    case 'LOGIN':
      return account.map((a) => [Buffer.from(a), Buffer.from(password(a))]);
    case 'CRAM-MD5':
      return account.map((a) => [Buffer.from(`${a} ${createHmac('md5', Buffer.from(password(a))).update(CRAM_CHALLENGE).digest('hex')}`)]);
    case 'OAUTHBEARER':
      return fc.constantFrom(...tokens.valid).map((v) => [Buffer.from(`n,a=${encodeSaslname(v.account)},\x01auth=Bearer ${v.token}\x01\x01`)]);
    case 'XOAUTH2':
      return fc.constantFrom(...tokens.valid).map((v) => [Buffer.from(`user=${v.account}\x01auth=Bearer ${v.token}\x01\x01`)]);
    case 'SCRAM-SHA-1':
    case 'SCRAM-SHA-1-PLUS':
    case 'SCRAM-SHA-256':
    case 'SCRAM-SHA-256-PLUS': {
      const hash: ScramHash = name.startsWith('SCRAM-SHA-1') ? 'sha1' : 'sha256';
      const flag = name.endsWith('-PLUS') ? 'p=tls-exporter' : 'n';
      return account.map((a) => {
        const first: ScramFirst = { text: `${flag},,n=${encodeSaslname(a)},r=fyko+d2lbbFgONRv9qkxdawL`, username: a, nonce: 'fyko+d2lbbFgONRv9qkxdawL' };
        const serverFirst = predictServerFirst(first, hash, credentials) ?? '';
        const right: ScramFinalPlan = { password: 'right', binding: 'right', nonce: 'right', proof: 'right', extensions: [] };
        return [Buffer.from(first.text), Buffer.from(scramFinal(right, { hash, clientFirst: first.text, serverFirst, password: password(a) })), Buffer.alloc(0)];
      });
    }
  }
}
