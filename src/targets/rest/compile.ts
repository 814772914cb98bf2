// A recipe's expressions and templates: where each one sits in the recipe (for file:line:col
// errors), what is wrong with it (syntax, an unknown $function), and compiled once for the
// target. An expression is JSONata with the kit's CONTEXT_HELPERS; a template is text with
// {expression} placeholders (`{{` is a literal brace), its values percent-encoded in URLs.

import {
  compileExpr,
  ExprError,
  parseExpr,
  unknownCalls,
  type CompiledExpr,
} from '../../lib/expr.js';
import { CONTEXT_HELPER_NAMES, CONTEXT_HELPERS } from '../kit/context.js';

export interface Problem {
  /** 0-based offset in the scalar's text. */
  offset: number | undefined;
  message: string;
}

export interface Site {
  path: (string | number)[];
  kind: 'expr' | 'template';
  source: string;
  problems: Problem[];
}

const KNOWN = new Set<string>(CONTEXT_HELPER_NAMES);

/** What is wrong with one expression, offsets from `base`. */
export function exprProblems(source: string, base = 0): Problem[] {
  let ast;
  try {
    ast = parseExpr(source).ast;
  } catch (err) {
    const e = err as ExprError;
    return [
      {
        offset: e.position === undefined ? base : base + Math.max(0, e.position - 1),
        message: `expression error: ${e.message}`,
      },
    ];
  }
  return unknownCalls(ast, KNOWN).map((c) => ({
    offset: c.position === undefined ? base : base + c.position,
    message: `unknown function $${c.name}`,
  }));
}

type Part = string | { source: string; offset: number };

/** A template's literal text and placeholders; throws a Problem for an unclosed brace. */
export function parseTemplate(text: string): Part[] {
  const parts: Part[] = [];
  let lit = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '{' && text[i + 1] === '{') {
      lit += '{';
      i += 2;
    } else if (ch === '}' && text[i + 1] === '}') {
      lit += '}';
      i += 2;
    } else if (ch === '{') {
      // The placeholder ends at its matching brace; braces inside strings do not count.
      let depth = 1;
      let j = i + 1;
      let quote: string | null = null;
      for (; j < text.length && depth > 0; j++) {
        const c = text[j]!;
        if (quote) {
          if (c === '\\') j++;
          else if (c === quote) quote = null;
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '{') depth++;
        else if (c === '}') depth--;
      }
      if (depth > 0) throw { offset: i, message: 'template: "{" without its "}"' } as Problem;
      if (lit) parts.push(lit);
      lit = '';
      parts.push({ source: text.slice(i + 1, j - 1), offset: i + 1 });
      i = j;
    } else {
      lit += ch;
      i++;
    }
  }
  if (lit) parts.push(lit);
  return parts;
}

export const PLAIN = 'only a plain path (vars.name) can be worked out here, before any call';

export function templateProblems(text: string, plain: boolean): Problem[] {
  let parts: Part[];
  try {
    parts = parseTemplate(text);
  } catch (p) {
    return [p as Problem];
  }
  return parts.flatMap((p) =>
    typeof p === 'string'
      ? []
      : !p.source.trim()
        ? [{ offset: p.offset, message: 'template: an empty {} placeholder' }]
        : plain && !isSimplePath(p.source)
          ? [{ offset: p.offset, message: PLAIN }]
          : exprProblems(p.source, p.offset),
  );
}

/** A compiled expression: evaluate() always resolves; evaluateNow() for the simple ones. */
export interface Expression {
  readonly source: string;
  evaluate(input: Record<string, unknown>): Promise<unknown>;
  /** The value at once, or undefined if the expression needs jsonata's async evaluator. */
  readonly simple: boolean;
  evaluateNow(input: Record<string, unknown>): unknown;
}

/** `vars.dataCentre`, `answer.body.'api-domain'`: a path, read at once (no evaluator). */
const SIMPLE_PATH = /^\s*[A-Za-z_]\w*(?:\s*\.\s*(?:[A-Za-z_]\w*|'[^']*'|`[^`]*`))*\s*$/;

function readPath(source: string, input: Record<string, unknown>): unknown {
  let v: unknown = input;
  for (const m of source.matchAll(/[A-Za-z_]\w*|'([^']*)'|`([^`]*)`/g)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[m[1] ?? m[2] ?? m[0]];
  }
  return v;
}

/**
 * Whether an expression can be read at once (`evaluateNow`): a plain path. Places that are worked
 * out outside a delivery (baseUrl, the OAuth token URL and headers, apiUrl) need one.
 */
export const isSimplePath = (source: string): boolean => SIMPLE_PATH.test(source);

export function expression(source: string): Expression {
  const c: CompiledExpr = compileExpr(source, CONTEXT_HELPERS);
  const simple = isSimplePath(source);
  return {
    source,
    simple,
    evaluate: async (input) => c.evaluate(input, {}),
    evaluateNow: (input) => {
      if (!simple) throw new Error(`"${source}" is not a plain path (vars.name)`);
      return readPath(source, input);
    },
  };
}

export interface Template {
  readonly source: string;
  /** The text with each placeholder's value (percent-encoded if `encode`; '' for none). */
  render(input: Record<string, unknown>, encode: boolean): Promise<string>;
  readonly simple: boolean;
  renderNow(input: Record<string, unknown>, encode: boolean): string;
}

const text = (v: unknown): string =>
  v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);

export function template(source: string): Template {
  const parts = parseTemplate(source).map((p) =>
    typeof p === 'string' ? p : expression(p.source),
  );
  const join = (values: unknown[], encode: boolean): string =>
    parts
      .map((p, i) =>
        typeof p === 'string' ? p : encode ? encodeURIComponent(text(values[i])) : text(values[i]),
      )
      .join('');
  return {
    source,
    simple: parts.every((p) => typeof p === 'string' || p.simple),
    render: async (input, encode) =>
      join(
        await Promise.all(
          parts.map((p) => (typeof p === 'string' ? Promise.resolve(p) : p.evaluate(input))),
        ),
        encode,
      ),
    renderNow: (input, encode) =>
      join(
        parts.map((p) => (typeof p === 'string' ? p : p.evaluateNow(input))),
        encode,
      ),
  };
}
