// Writing the XML documents mail programs are sent (autoconfig, Autodiscover, .mobileconfig).
// Every text and attribute value goes through escapeXml: an address or a host name from the
// config or the request must never become markup.

/** A node of a document to write: an element with attributes and children, or text. */
export type XmlNode = string | XmlElement;

export interface XmlElement {
  readonly name: string;
  readonly attributes?: Readonly<Record<string, string>>;
  readonly children?: readonly XmlNode[];
}

/** An element; `children` may hold strings (text) and elements. */
export function el(name: string, attributes: Readonly<Record<string, string>> | undefined, ...children: readonly XmlNode[]): XmlElement {
  return attributes === undefined ? { name, children } : { name, attributes, children };
}

/**
 * Escapes the five XML specials. Characters XML 1.0 cannot carry at all (C0 controls other than
 * tab, CR and LF; lone surrogates; U+FFFE and U+FFFF) are dropped: they cannot come from a valid
 * address or name, and no escape makes them legal (XML 1.0 section 2.2).
 */
export function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')
    .replace(/[&<>"']/g, (c) => ENTITIES[c] as string);
}

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** The document: an XML declaration, an optional DOCTYPE line as given, the root indented by two. */
export function xmlDocument(root: XmlElement, doctype?: string): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>'];
  if (doctype !== undefined) lines.push(doctype);
  write(root, 0, lines);
  return `${lines.join('\n')}\n`;
}

function write(node: XmlElement, depth: number, lines: string[]): void {
  const indent = '  '.repeat(depth);
  const attributes = Object.entries(node.attributes ?? {})
    .map(([k, v]) => ` ${k}="${escapeXml(v)}"`)
    .join('');
  const children = node.children ?? [];
  if (children.length === 0) {
    lines.push(`${indent}<${node.name}${attributes}/>`);
  } else if (children.every((c) => typeof c === 'string')) {
    lines.push(`${indent}<${node.name}${attributes}>${children.map((c) => escapeXml(c as string)).join('')}</${node.name}>`);
  } else {
    lines.push(`${indent}<${node.name}${attributes}>`);
    for (const child of children) {
      if (typeof child === 'string') lines.push(`${indent}  ${escapeXml(child)}`);
      else write(child, depth + 1, lines);
    }
    lines.push(`${indent}</${node.name}>`);
  }
}
