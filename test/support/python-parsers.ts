// Real parsers for what Postern sends mail programs: Python's xml.etree.ElementTree for XML and
// plistlib for Apple property lists (python3 is already on every test machine). Each document is
// parsed in a python3 process and handed back as JSON, so a test asserts on what a conforming
// parser read, not on the text we wrote.

import { requireTool, runTool } from './external-tool.js';

/** An element as ElementTree reads it; tags carry their namespace as "{uri}name". */
export interface XmlTree {
  readonly tag: string;
  readonly attrib: Readonly<Record<string, string>>;
  /** The text before the first child, stripped; "" when none. */
  readonly text: string;
  readonly children: readonly XmlTree[];
}

const XML_TO_JSON = `
import json, sys, xml.etree.ElementTree as ET
def tree(e):
    return {"tag": e.tag, "attrib": dict(e.attrib), "text": (e.text or "").strip(), "children": [tree(c) for c in e]}
sys.stdout.write(json.dumps(tree(ET.fromstring(sys.stdin.buffer.read()))))
`;

const PLIST_TO_JSON = `
import base64, datetime, json, plistlib, sys
def plain(v):
    if isinstance(v, dict): return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list): return [plain(x) for x in v]
    if isinstance(v, bytes): return {"data": base64.b64encode(v).decode()}
    if isinstance(v, datetime.datetime): return {"date": v.isoformat()}
    return v
sys.stdout.write(json.dumps(plain(plistlib.loads(sys.stdin.buffer.read(), fmt=plistlib.FMT_XML))))
`;

/** Parses `text` with ElementTree; rejects with Python's error when it is not well-formed. */
export async function parseXml(text: string): Promise<XmlTree> {
  return JSON.parse(await runPython(XML_TO_JSON, text)) as XmlTree;
}

/** Parses an XML property list with plistlib. */
export async function parsePlist(text: string): Promise<unknown> {
  return JSON.parse(await runPython(PLIST_TO_JSON, text));
}

/** The children of `node` with local name `name` (any namespace). */
export function childrenNamed(node: XmlTree, name: string): XmlTree[] {
  return node.children.filter((c) => localName(c.tag) === name);
}

/** The one child named `name`; throws if there is not exactly one. */
export function child(node: XmlTree, name: string): XmlTree {
  const found = childrenNamed(node, name);
  if (found.length !== 1) throw new Error(`expected one <${name}> in <${localName(node.tag)}>, found ${found.length}`);
  return found[0] as XmlTree;
}

/** The text of the one child named `name`. */
export function textOf(node: XmlTree, name: string): string {
  return child(node, name).text;
}

export function localName(tag: string): string {
  return tag.replace(/^\{[^}]*\}/, '');
}

export function namespaceOf(tag: string): string | undefined {
  return /^\{([^}]*)\}/.exec(tag)?.[1];
}

async function runPython(script: string, input: string): Promise<string> {
  requireTool('python3', 'python3');
  const result = await runTool('python3', ['-c', script], input);
  if (result.code !== 0) throw new Error(`python3 could not parse the document: ${result.stderr.trim().split('\n').pop() ?? ''}`);
  return result.stdout;
}
