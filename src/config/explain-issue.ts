// Turns a zod validation issue into one line an operator can act on: the key as written in the
// TOML file, what it expects (read from the schema itself, so the text cannot drift from the
// rules), and what was found. Zod's own messages ("Invalid input") do not name the key.

import type { z } from 'zod';

type Issue = z.core.$ZodIssue;

/** The parts of zod 4's schema definitions that are read here. */
interface SchemaNode {
  readonly _zod: { readonly def: SchemaDef };
}
interface SchemaDef {
  readonly type: string;
  readonly innerType?: SchemaNode;
  readonly shape?: Readonly<Record<string, SchemaNode>>;
  readonly element?: SchemaNode;
  readonly entries?: Readonly<Record<string, string | number>>;
  readonly checks?: readonly { readonly _zod: { readonly def: CheckDef } }[];
}
interface CheckDef {
  readonly check: string;
  readonly value?: unknown;
  readonly inclusive?: boolean;
  readonly format?: string;
  readonly minimum?: number;
  readonly maximum?: number;
}

/** "limits.max_recipients: expected a whole number >= 1, got \"lots\"" (without the file name). */
export function explainIssue(issue: Issue, root: z.ZodType): string {
  const path = issue.path;
  const key = keyName(path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const names = issue.keys.map((k) => `"${keyName([...path, k])}"`).join(', ');
      const allowed = Object.keys(unwrap(nodeAt(root, path))?._zod.def.shape ?? {}).join(', ');
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${names} (allowed: ${allowed})`;
    }
    case 'custom':
      return key === '' ? issue.message : `${key}: ${issue.message}`;
    case 'invalid_format':
      // Our formats carry their own "expected ..." text (see listenAddress in schema.ts).
      return `${key}: ${issue.message}, got ${show(issue.input)}`;
    default: {
      const expected = describe(nodeAt(root, path));
      const what = expected === undefined ? issue.message : `expected ${expected}`;
      return `${key === '' ? 'the file' : key}: ${what}, got ${show(issue.input)}`;
    }
  }
}

/** ["listen", "mx", 0] -> "listen.mx[0]" */
function keyName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function unwrap(node: SchemaNode | undefined): SchemaNode | undefined {
  let n = node;
  while (n?._zod.def.innerType !== undefined) n = n._zod.def.innerType;
  return n;
}

function nodeAt(root: z.ZodType, path: readonly PropertyKey[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = root as unknown as SchemaNode;
  for (const part of path) {
    const def: SchemaDef | undefined = unwrap(node)?._zod.def;
    if (def?.type === 'object' && typeof part === 'string') node = def.shape?.[part];
    else if (def?.type === 'array' && typeof part === 'number') node = def.element;
    else return undefined;
  }
  return node;
}

function describe(node: SchemaNode | undefined): string | undefined {
  const def = unwrap(node)?._zod.def;
  if (def === undefined) return undefined;
  const checks = (def.checks ?? []).map((c) => c._zod.def);
  switch (def.type) {
    case 'number':
      return describeNumber(checks);
    case 'string': {
      const min = checks.find((c) => c.check === 'min_length')?.minimum;
      const max = checks.find((c) => c.check === 'max_length')?.maximum;
      if (max !== undefined) return `a string of at most ${max} character${max === 1 ? '' : 's'}`;
      if (min !== undefined && min > 0) return 'a non-empty string';
      return 'a string';
    }
    case 'boolean':
      return 'true or false';
    case 'enum':
      return `one of ${Object.values(def.entries ?? {})
        .map((v) => JSON.stringify(v))
        .join(', ')}`;
    case 'array': {
      const element = describe(def.element);
      return element === undefined ? 'a list' : `a list, each ${element}`;
    }
    case 'object':
      return 'a table';
    default:
      return undefined;
  }
}

function describeNumber(checks: readonly CheckDef[]): string {
  const whole = checks.some((c) => c.check === 'number_format' && /int/.test(c.format ?? ''));
  const noun = whole ? 'a whole number' : 'a number';
  const low = checks.find((c) => c.check === 'greater_than');
  const high = checks.find((c) => c.check === 'less_than');
  if (low && high && low.inclusive && high.inclusive) return `${noun} from ${String(low.value)} to ${String(high.value)}`;
  const bounds: string[] = [];
  if (low) bounds.push(`${low.inclusive ? '>=' : '>'} ${String(low.value)}`);
  if (high) bounds.push(`${high.inclusive ? '<=' : '<'} ${String(high.value)}`);
  return bounds.length === 0 ? noun : `${noun} ${bounds.join(' and ')}`;
}

/** The value found, as the operator wrote it in TOML. */
function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') {
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}..."` : text;
  }
  if (value instanceof Date) return 'a date';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'a table';
  return String(value);
}
