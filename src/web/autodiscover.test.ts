import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAutodiscoverRequest, REQUEST_SCHEMA, RESPONSE_SCHEMA } from './autodiscover.js';

/** The request Outlook sends (POX Autodiscover). */
function outlookRequest(address: string, schema = RESPONSE_SCHEMA): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?>\r\n' +
    `<Autodiscover xmlns="${REQUEST_SCHEMA}">\r\n` +
    '  <Request>\r\n' +
    `    <EMailAddress>${address}</EMailAddress>\r\n` +
    `    <AcceptableResponseSchema>${schema}</AcceptableResponseSchema>\r\n` +
    '  </Request>\r\n' +
    '</Autodiscover>\r\n'
  );
}

const parse = (text: string) => parseAutodiscoverRequest(Buffer.from(text, 'utf8'));

describe('parseAutodiscoverRequest', () => {
  test("Outlook's request: the address and the schema it accepts", () => {
    assert.deepEqual(parse(outlookRequest('alice@example.test')), { ok: true, emailAddress: 'alice@example.test', acceptableSchema: RESPONSE_SCHEMA });
  });

  test('entities are decoded; a namespace prefix and a byte order mark change nothing', () => {
    assert.equal((parse(outlookRequest('o&amp;b@example.test')) as { emailAddress: string }).emailAddress, 'o&b@example.test');
    const prefixed = `<a:Autodiscover xmlns:a="${REQUEST_SCHEMA}"><a:Request><a:EMailAddress>alice@example.test</a:EMailAddress><a:AcceptableResponseSchema>${RESPONSE_SCHEMA}</a:AcceptableResponseSchema></a:Request></a:Autodiscover>`;
    assert.equal(parse(prefixed).ok, true);
    assert.equal(parseAutodiscoverRequest(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(outlookRequest('alice@example.test'))])).ok, true);
  });

  test('refused: not XML, not well-formed, not UTF-8, a DOCTYPE, missing or repeated fields', () => {
    const refused: Record<string, string | Buffer> = {
      empty: '',
      'not XML': 'alice@example.test',
      unclosed: outlookRequest('alice@example.test').replace('</Autodiscover>', ''),
      mismatched: outlookRequest('alice@example.test').replace('</EMailAddress>', '</EmailAddress>'),
      'two roots': outlookRequest('a@example.test') + outlookRequest('b@example.test'),
      latin1: Buffer.from(outlookRequest('jörg@example.test'), 'latin1'),
      'entity bomb': `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>${outlookRequest('&b;@example.test').replace(/^<\?xml[^>]*>/, '')}`,
      'external entity': `<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>${outlookRequest('&x;')}`,
      'no address': outlookRequest('').replace(/<EMailAddress><\/EMailAddress>/, ''),
      'empty address': outlookRequest(''),
      'two addresses': outlookRequest('a@example.test</EMailAddress><EMailAddress>b@example.test'),
      'no schema': outlookRequest('alice@example.test').replace(/<AcceptableResponseSchema>.*<\/AcceptableResponseSchema>/, ''),
      'another root': outlookRequest('alice@example.test').replaceAll('Autodiscover', 'Discover'),
      'address with markup': outlookRequest('<b>alice</b>@example.test'),
    };
    for (const [what, body] of Object.entries(refused)) {
      const result = parseAutodiscoverRequest(Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'));
      assert.equal(result.ok, false, what);
    }
  });
});
