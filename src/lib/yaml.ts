// Loading YAML files (relay.yaml, adapters) with source positions, so that every configuration
// error names `file:line:col`, plus `${ENV_VAR}` / `${ENV_VAR:-default}` substitution.

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import YAML, { isMap, isPair, isScalar, LineCounter, type Document, type Node } from 'yaml';
import type { z } from 'zod';

export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col} ${i.message}`;
}

export interface LoadedYaml {
  /** Path as shown in messages: relative to the working directory when below it. */
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** The file's text, for places inside multi-line scalars. */
  text: string;
  value: unknown;
  /** Environment variables that were unset and fell back to their `:-default`. */
  envFallbacks: { name: string; path: (string | number)[] }[];
  /**
   * Unquoted `${VAR}` values that read as a number or true/false, by path (JSON of it): their
   * text, for a field that wants text (validateYaml), as a token of digits does.
   */
  envTexts?: Map<string, string>;
}

export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

export interface EnvOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Where an unset variable may stand for a value nobody will use (a command that only reads the
   * store needs no CRM token): it becomes a placeholder instead of an error.
   */
  unsetAllowed?: (path: (string | number)[], doc: Document) => boolean;
}

/** What an allowed unset variable becomes: something every field accepts, and says what it is. */
function placeholder(name: string, path: (string | number)[]): string {
  const key = String(path.at(-1) ?? '');
  return /url$/i.test(key)
    ? `https://${name.toLowerCase().replace(/_/g, '-')}.unset.invalid/`
    : `unset-${name}`;
}

export function parseYaml(text: string, file: string, opts: EnvOptions = {}): LoadedYaml {
  const lines = new LineCounter();
  const doc = YAML.parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const issues: ConfigIssue[] = [];
  const at = (offset: number, message: string): ConfigIssue => {
    const p = lines.linePos(offset);
    return { file, line: p.line, col: p.col, message };
  };
  for (const e of doc.errors) {
    const line = text.split('\n')[lines.linePos(e.pos[0]).line - 1] ?? '';
    // `{ token: ${X} }` is not YAML: the braces of ${...} clash with the flow mapping's own.
    const hint = /[{[][^\n]*\$\{/.test(line)
      ? ' (inside { } or [ ], quote ${VAR} references: "${VAR}")'
      : '';
    issues.push(at(e.pos[0], `${e.message.split('\n')[0] ?? e.message}${hint}`));
  }
  if (issues.length)
    throw new ConfigError(
      issues.slice(0, 1).concat(issues.slice(1).filter((i) => i.line !== issues[0]!.line)),
    );

  const envFallbacks: LoadedYaml['envFallbacks'] = [];
  const envTexts = new Map<string, string>();
  if (opts.env) {
    const env = opts.env;
    YAML.visit(doc, {
      Scalar(key, node, path) {
        if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
        const keyPath = pathOf(path, node);
        const out = substituteEnv(node.value, env, (name, hasDefault) => {
          if (hasDefault) envFallbacks.push({ name, path: keyPath });
          else if (opts.unsetAllowed?.(keyPath, doc)) return placeholder(name, keyPath);
          else
            issues.push(
              at(
                node.range?.[0] ?? 0,
                `environment variable ${name} is not set (used by ${keyPath.join('.') || 'the document'})`,
              ),
            );
        });
        // An unquoted `${PORT}` should become the number 8080, as if written so.
        if (node.type === 'PLAIN') {
          const resolved: unknown = YAML.parse(out);
          const typed =
            resolved === null || typeof resolved === 'number' || typeof resolved === 'boolean';
          node.value = typed ? resolved : out;
          if (typed) envTexts.set(JSON.stringify(keyPath), out);
        } else node.value = out;
      },
    });
    if (issues.length) throw new ConfigError(issues);
  }
  return { file, doc, lines, text, value: doc.toJS(), envFallbacks, envTexts };
}

export function loadYamlFile(path: string, opts: EnvOptions = {}): LoadedYaml {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      {
        file: displayPath(path),
        line: 1,
        col: 1,
        message: `cannot read: ${(err as Error).message}`,
      },
    ]);
  }
  return parseYaml(text, displayPath(path), opts);
}

const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * `${NAME}` and `${NAME:-default}`; `$${` is a literal `${`. `onMissing` may give the value of an
 * unset variable.
 */
export function substituteEnv(
  text: string,
  env: NodeJS.ProcessEnv,
  onMissing: (name: string, hasDefault: boolean) => string | void,
): string {
  return text.replace(ENV_REF, (m, name: string | undefined, def: string | undefined) => {
    if (m === '$${') return '${';
    const v = env[name!];
    if (v !== undefined && v !== '') return v;
    return onMissing(name!, def !== undefined) ?? def ?? '';
  });
}

function pathOf(ancestors: readonly unknown[], node: Node): (string | number)[] {
  const out: (string | number)[] = [];
  let prev: unknown = node;
  for (let i = ancestors.length - 1; i >= 0; i--) {
    const a = ancestors[i];
    if (isPair(a) && isScalar(a.key)) out.unshift(String(a.key.value));
    else if (
      a &&
      typeof a === 'object' &&
      'items' in a &&
      Array.isArray((a as { items: unknown[] }).items) &&
      !isMap(a)
    ) {
      const idx = (a as { items: unknown[] }).items.indexOf(prev);
      if (idx >= 0) out.unshift(idx);
    }
    prev = a;
  }
  return out;
}

/** Position of the node at `path` (or of the nearest ancestor that exists). */
export function positionOf(
  y: LoadedYaml,
  path: readonly PropertyKey[],
  opts: { key?: string } = {},
): { line: number; col: number } {
  let node: unknown = y.doc.contents;
  let best = (node as Node | null)?.range?.[0] ?? 0;
  for (const seg of path) {
    if (node && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      node = pair.value ?? pair.key;
      best = ((pair.value as Node | null)?.range ?? (pair.key as Node).range)?.[0] ?? best;
    } else if (node && typeof node === 'object' && 'items' in node && typeof seg === 'number') {
      node = (node as { items: unknown[] }).items[seg];
      if (!node) break;
      best = (node as Node).range?.[0] ?? best;
    } else break;
  }
  if (opts.key && node && isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === opts.key);
    const r = (pair?.key as Node | undefined)?.range;
    if (r) best = r[0];
  }
  return y.lines.linePos(best);
}

export function issueAt(
  y: LoadedYaml,
  path: readonly PropertyKey[],
  message: string,
  opts: { key?: string } = {},
): ConfigIssue {
  const p = positionOf(y, path, opts);
  return { file: y.file, line: p.line, col: p.col, message };
}

/**
 * The place of a 0-based offset inside the expression scalar at `path` (a JSONata error's
 * position): on its line, past a quote; in a block scalar (`|`), on the block's own line.
 */
export function exprIssueAt(
  y: LoadedYaml,
  path: readonly PropertyKey[],
  offset: number | undefined,
  message: string,
): ConfigIssue {
  const base = positionOf(y, path);
  const node = y.doc.getIn(path as PropertyKey[], true);
  if (!isScalar(node) || offset === undefined) return { file: y.file, ...base, message };
  if (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED') {
    // The block's text starts on the line after its indicator, every line indented alike.
    const text = String(node.value);
    const before = text.slice(0, Math.max(0, offset));
    const line = base.line + 1 + (before.match(/\n/g)?.length ?? 0);
    // The block's own indentation (its first line's), which YAML strips from every line; a line
    // indented deeper keeps the rest in the text, so it is counted there.
    const start = y.lines.lineStarts[base.line] ?? 0;
    const indent = /^ */.exec(y.text.slice(start))![0].length;
    return { file: y.file, line, col: indent + before.length - before.lastIndexOf('\n'), message };
  }
  const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE' ? 1 : 0;
  return { file: y.file, line: base.line, col: base.col + quoted + Math.max(0, offset), message };
}

/** Validate the loaded value with a zod schema; errors carry the file position of the culprit. */
export function validateYaml<S extends z.ZodType>(y: LoadedYaml, schema: S): z.output<S> {
  let r = schema.safeParse(y.value);
  // The schema says which fields are text: a `${VAR}` that read as a number there is its text.
  const texts = r.success ? [] : textsWanted(y, r.error.issues);
  if (texts.length) {
    const value = structuredClone(y.value);
    for (const [path, text] of texts) setAt(value, path, text);
    r = schema.safeParse(value);
  }
  if (r.success) return r.data;
  const issues: ConfigIssue[] = [];
  for (const iss of r.error.issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys)
        issues.push(issueAt(y, iss.path, `unknown field "${k}"`, { key: k }));
    } else {
      const where = iss.path.length ? `${iss.path.join('.')}: ` : '';
      issues.push(issueAt(y, iss.path, `${where}${iss.message}`));
    }
  }
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  throw new ConfigError(issues);
}

/** The env-substituted values a schema wanted as text, with their paths. */
function textsWanted(
  y: LoadedYaml,
  issues: readonly z.core.$ZodIssue[],
): [PropertyKey[], string][] {
  const out: [PropertyKey[], string][] = [];
  for (const iss of issues) {
    if (iss.code !== 'invalid_type' || iss.expected !== 'string') continue;
    const text = y.envTexts?.get(JSON.stringify(iss.path));
    if (text !== undefined) out.push([iss.path, text]);
  }
  return out;
}

function setAt(root: unknown, path: readonly PropertyKey[], v: unknown): void {
  let at = root as Record<PropertyKey, unknown>;
  for (const k of path.slice(0, -1)) at = at[k] as Record<PropertyKey, unknown>;
  at[path[path.length - 1]!] = v;
}
