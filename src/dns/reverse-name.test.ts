import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reverseName, reversedLabels } from './reverse-name.js';

test('IPv4 octets and IPv6 nibbles, reversed (RFC 1035 section 3.5, RFC 3596 section 2.5)', () => {
  assert.equal(reverseName('192.0.2.25'), '25.2.0.192.in-addr.arpa');
  // RFC 3596 section 2.5's own example: 4321:0:1:2:3:4:567:89ab.
  assert.equal(reverseName('4321:0:1:2:3:4:567:89ab'), 'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa');
  assert.equal(reversedLabels('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
  assert.equal(reversedLabels('::ffff:192.0.2.1'), '1.0.2.0.0.0.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0');
  assert.equal(reverseName('mx.example.test'), undefined);
});
