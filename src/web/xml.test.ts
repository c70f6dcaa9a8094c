import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { child, parseXml } from '../../test/support/python-parsers.js';
import { el, escapeXml, xmlDocument } from './xml.js';

test('escapeXml: the five specials become entities; characters XML cannot carry are dropped', () => {
  assert.equal(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
  assert.equal(escapeXml('a\u0000b\u0007c\td\ne\uffffé\ud800'), 'abc\td\neé');
  assert.equal(escapeXml('😀'), '😀', 'a surrogate pair is one character');
});

test('any text and attribute value survives a real parser unchanged (less what XML cannot carry)', async () => {
  const texts = fc.sample(fc.string({ unit: 'binary', maxLength: 40 }), { numRuns: 300, seed: 20260101 });
  texts.push(']]>', '&amp;', '<!--', '"\'', '\r\n');
  const doc = xmlDocument(el('root', undefined, ...texts.map((t) => el('v', { a: t }, t))));
  const parsed = await parseXml(doc);
  assert.equal(parsed.children.length, texts.length);
  parsed.children.forEach((node, i) => {
    const expected = escapeXml(texts[i] as string)
      .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
    // XML 1.0 2.11: a parser turns CR and CRLF into LF in text; in attributes every whitespace
    // character becomes a space (3.3.3). ElementTree's text is stripped by the helper.
    assert.equal(node.text, expected.replace(/\r\n?/g, '\n').trim(), JSON.stringify(texts[i]));
    assert.equal(node.attrib.a, expected.replace(/\r\n|[\r\n\t]/g, ' '), JSON.stringify(texts[i]));
  });
  assert.equal(child(await parseXml(xmlDocument(el('a', undefined, el('b', undefined)))), 'b').text, '');
});
