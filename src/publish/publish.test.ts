import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configSchema } from '../config/schema.js';
import { mtaStsPolicy } from './mta-sts-policy.js';
import { clientHost, offeredServices } from './offered-services.js';

const config = (extra: object = {}) => configSchema.parse({ hostname: 'Mail.Example.test', ...extra });

describe('offeredServices', () => {
  test('implicit TLS before STARTTLS, ports from the first listen address, no IMAP without Dovecot', () => {
    const services = offeredServices(config({ listen: { submissions: ['0.0.0.0:465', '[::]:465'], submission: ['0.0.0.0:587'] } }));
    assert.deepEqual(
      services.map((s) => `${s.srv} ${s.protocol}/${s.security} ${s.host}:${s.port}`),
      [
        '_pop3s._tcp pop3/tls mail.example.test:2995',
        '_pop3._tcp pop3/starttls mail.example.test:2110',
        '_submissions._tcp smtp/tls mail.example.test:465',
        '_submission._tcp smtp/starttls mail.example.test:587',
      ],
    );
  });

  test('IMAP when [dovecot] listens; a listener turned off is not offered', () => {
    const services = offeredServices(config({ dovecot: { imaps: ['0.0.0.0:993'] }, listen: { pop3: [], pop3s: [] } }));
    assert.deepEqual(services.map((s) => s.srv), ['_imaps._tcp', '_submissions._tcp', '_submission._tcp']);
  });

  test('[clients] host wins over hostname', () => {
    assert.equal(clientHost(config({ clients: { host: 'IMAP.example.test' } })), 'imap.example.test');
    assert.equal(clientHost(config()), 'mail.example.test');
  });
});

describe('mtaStsPolicy', () => {
  test('RFC 8461 3.2 fields with CRLF, mx defaulting to hostname, max_age in seconds', () => {
    const { text, id } = mtaStsPolicy(config());
    assert.equal(text, 'version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\nmax_age: 604800\r\n');
    assert.match(id, /^[A-Za-z0-9]{1,32}$/);
  });

  test('the id changes when the policy does, and only then', () => {
    const enforce = mtaStsPolicy(config({ mta_sts: { mode: 'enforce', mx: ['mx1.example.test', '*.example.test'] } }));
    assert.match(enforce.text, /mode: enforce\r\nmx: mx1\.example\.test\r\nmx: \*\.example\.test\r\n/);
    assert.equal(mtaStsPolicy(config({ mta_sts: { mode: 'enforce', mx: ['mx1.example.test', '*.example.test'] } })).id, enforce.id);
    assert.notEqual(mtaStsPolicy(config()).id, enforce.id);
  });

  test('"none" names no MX; max_age is capped at a year', () => {
    const { text } = mtaStsPolicy(config({ mta_sts: { mode: 'none', max_age: '800d' } }));
    assert.equal(text, 'version: STSv1\r\nmode: none\r\nmax_age: 31557600\r\n');
  });
});
