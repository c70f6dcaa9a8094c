import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EnvelopeRecipient } from '../mail/envelope.js';
import { deliveryRecipients } from './delivery-recipients.js';

const alice: EnvelopeRecipient = { address: 'alice@local.test', params: {}, mailboxes: ['alice@local.test'] };

test('recipients without forwards pass through unchanged', () => {
  const plain: EnvelopeRecipient[] = [alice, { address: 'bob@remote.test', params: { notify: ['FAILURE'] }, mailboxes: [] }];
  assert.deepEqual(deliveryRecipients(plain), plain);
});

test('an alias keeps its mailboxes and adds one remote recipient per forward, ORCPT naming the alias', () => {
  const team: EnvelopeRecipient = {
    address: 'Team@local.test',
    params: { notify: ['SUCCESS', 'FAILURE'] },
    mailboxes: ['alice@local.test'],
    forwards: ['x@remote.test', 'y@other.test'],
  };
  assert.deepEqual(deliveryRecipients([team]), [
    { address: 'Team@local.test', params: { notify: ['SUCCESS', 'FAILURE'] }, mailboxes: ['alice@local.test'] },
    { address: 'x@remote.test', params: { notify: ['SUCCESS', 'FAILURE'], orcpt: { addrType: 'rfc822', address: 'Team@local.test' } }, mailboxes: [], forwardedBy: 'Team@local.test' },
    { address: 'y@other.test', params: { notify: ['SUCCESS', 'FAILURE'], orcpt: { addrType: 'rfc822', address: 'Team@local.test' } }, mailboxes: [], forwardedBy: 'Team@local.test' },
  ]);
});

test('an alias with only remote targets has no entry of its own; a client ORCPT is kept', () => {
  const orcpt = { addrType: 'rfc822', address: 'Outside@Local.Test' };
  const outside: EnvelopeRecipient = { address: 'outside@local.test', params: { orcpt }, mailboxes: [], forwards: ['x@remote.test'] };
  assert.deepEqual(deliveryRecipients([outside]), [{ address: 'x@remote.test', params: { orcpt }, mailboxes: [], forwardedBy: 'outside@local.test' }]);
});

test('a non-ASCII alias is named with the utf-8 address type (RFC 6533)', () => {
  const r: EnvelopeRecipient = { address: 'équipe@local.test', params: {}, mailboxes: [], forwards: ['x@remote.test'] };
  assert.deepEqual(deliveryRecipients([r])[0]?.params.orcpt, { addrType: 'utf-8', address: 'équipe@local.test' });
});

test('a target already among the recipients, or behind a second alias, gets one copy', () => {
  const out = deliveryRecipients([
    { address: 'x@remote.test', params: {}, mailboxes: [] },
    { address: 'a@local.test', params: {}, mailboxes: [], forwards: ['X@remote.test', 'y@remote.test'] },
    { address: 'b@local.test', params: {}, mailboxes: [], forwards: ['y@remote.test'] },
  ]);
  assert.deepEqual(
    out.map((r) => r.address),
    ['x@remote.test', 'y@remote.test'],
  );
});
