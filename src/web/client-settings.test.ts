import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { configSchema, type Config } from '../config/schema.js';
import { ServerCertificates } from '../tls/server-certificates.js';
import { makeCertificate, writeCertificate } from '../../test/support/test-certificate.js';
import { clientSettings } from './client-settings.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-client-settings-'));
const loaded: ServerCertificates[] = [];
after(() => {
  for (const c of loaded) c.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

let files: { mail: { cert: string; key: string }; wild: { cert: string; key: string } };

before(async () => {
  const [mail, wild] = await Promise.all([makeCertificate('mail', ['mail.example.test']), makeCertificate('wild', ['*.other.test'])]);
  files = { mail: writeCertificate(tmp, 'mail', mail), wild: writeCertificate(tmp, 'wild', wild) };
});

function configOf(extra: Record<string, unknown>): Config {
  return configSchema.parse({ hostname: 'mx.example.test', data_dir: tmp, ...extra });
}

async function settingsFor(extra: Record<string, unknown>) {
  const config = configOf(extra);
  const certificates = await ServerCertificates.load(config, pino({ level: 'silent' }), { watch: false });
  loaded.push(certificates);
  return clientSettings(config, certificates);
}

describe('clientSettings: only names a certificate covers', () => {
  test('[clients] host when the certificate SNI picks for it covers it', async () => {
    const s = await settingsFor({ clients: { host: 'Mail.Example.Test' }, tls: files.mail });
    assert.ok(s.ok);
    assert.equal(s.host, 'mail.example.test');
    assert.equal(s.warning, undefined);
    assert.deepEqual(s.incoming.map((x) => `${x.protocol}/${x.security} ${x.host}:${x.port}`), ['pop3/tls mail.example.test:2995', 'pop3/starttls mail.example.test:2110']);
    assert.deepEqual(s.outgoing.map((x) => `${x.security} ${x.port}`), ['tls 2465', 'starttls 2587']);
  });

  test('a wildcard in a second certificate covers one label', async () => {
    const s = await settingsFor({ clients: { host: 'imap.other.test' }, tls: { ...files.mail, certificates: [files.wild] } });
    assert.ok(s.ok && s.host === 'imap.other.test');
    const deeper = await settingsFor({ hostname: 'a.b.other.test', clients: { host: 'x.y.other.test' }, tls: { ...files.mail, certificates: [files.wild] } });
    assert.equal(deeper.ok, false);
  });

  test('not covered: hostname instead, with a warning saying what to fix', async () => {
    // The generated self-signed certificate is for hostname.
    const s = await settingsFor({ clients: { host: 'imap.elsewhere.test' } });
    assert.ok(s.ok);
    assert.equal(s.host, 'mx.example.test');
    assert.match(s.warning ?? '', /no \[tls\] certificate covers \[clients\] host "imap\.elsewhere\.test"; mail programs are told hostname "mx\.example\.test" instead/);
  });

  test('neither covered: nothing is handed out', async () => {
    const s = await settingsFor({ tls: files.mail });
    assert.equal(s.ok, false);
    assert.match(!s.ok ? s.problem : '', /no \[tls\] certificate covers hostname "mx\.example\.test".*autoconfig answers 503/);
  });

  test('no incoming or no outgoing service: nothing to configure', async () => {
    const s = await settingsFor({ listen: { pop3: [], pop3s: [] } });
    assert.match(!s.ok ? s.problem : '', /no IMAP or POP3 listener/);
    const imap = await settingsFor({ listen: { pop3: [], pop3s: [] }, dovecot: { imap: ['0.0.0.0:143'] } });
    assert.ok(imap.ok && imap.incoming[0]?.protocol === 'imap' && imap.incoming[0].port === 143);
    const noSmtp = await settingsFor({ listen: { submission: [], submissions: [] } });
    assert.match(!noSmtp.ok ? noSmtp.problem : '', /no submission listener/);
  });
});
