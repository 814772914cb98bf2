// Adapter expressions are JSONata, compiled once at start. Most of them are tiny (`user`,
// `data.user.email`, `event = 'ringing'`, `$duration(duration)`), and jsonata's evaluator costs
// ~5 µs per node because every step is async. So each expression is also compiled, where its AST
// allows, into a plain JS closure covering a small subset of JSONata with identical semantics;
// anything outside the subset (or a value the subset does not handle, such as an object) falls
// back to jsonata itself. A differential test (test/ingest/expr.test.ts) holds the two to the same
// answers; bench/adapter-map.mjs measures what it saves.

import jsonata from 'jsonata';

export interface ExprVars {
  [name: string]: unknown;
}

export interface CompiledExpr {
  readonly source: string;
  readonly fast: boolean;
  evaluate(input: Record<string, unknown>, vars: ExprVars): unknown;
}

export class ExprError extends Error {
  /** Offset within the expression text, where jsonata reports one. */
  readonly position: number | undefined;
  constructor(message: string, position?: number) {
    super(message);
    this.name = 'ExprError';
    this.position = position;
  }
}

// jsonata's AST is untyped; these are the fields we read.
export interface JNode {
  type: string;
  value?: unknown;
  position?: number;
  steps?: JNode[];
  lhs?: JNode;
  rhs?: JNode;
  expressions?: JNode[];
  arguments?: JNode[];
  procedure?: JNode;
  condition?: JNode;
  then?: JNode;
  else?: JNode;
  stages?: unknown;
  predicate?: unknown;
  group?: unknown;
  focus?: unknown;
  index?: unknown;
  tuple?: unknown;
  keepArray?: boolean;
}

const FALLBACK = Symbol('fallback');
type Fast = (input: Record<string, unknown>, vars: ExprVars) => unknown;

export function parseExpr(source: string): { expr: jsonata.Expression; ast: JNode } {
  try {
    const expr = jsonata(source);
    return { expr, ast: expr.ast() as unknown as JNode };
  } catch (err) {
    const e = err as { message?: string; position?: number };
    throw new ExprError(e.message ?? String(err), e.position);
  }
}

export function compileExpr(
  source: string,
  helpers: Record<string, (...a: unknown[]) => unknown>,
  opts: { fast?: boolean } = {},
): CompiledExpr {
  const { expr, ast } = parseExpr(source);
  for (const [name, fn] of Object.entries(helpers)) expr.registerFunction(name, fn);
  const cov: Coverage = { partial: false };
  const fast = opts.fast === false ? null : compileFast(ast, helpers, cov);
  const slow = (input: Record<string, unknown>, vars: ExprVars): Promise<unknown> =>
    expr.evaluate(input, vars).then(cleanResult, (err: { message?: string; position?: number }) => {
      throw new ExprError(err.message ?? String(err), err.position);
    });
  return {
    source,
    fast: fast !== null && !cov.partial,
    evaluate(input, vars) {
      if (fast) {
        const v = fast(input, vars);
        if (v !== FALLBACK) return v;
      }
      return slow(input, vars);
    },
  };
}

/**
 * jsonata returns arrays with a hidden `sequence` flag and objects without prototype; make them
 * plain.
 */
function cleanResult(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(cleanResult);
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, cleanResult(x)]));
  return v;
}

const isScalar = (v: unknown): v is string | number | boolean | null =>
  v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

/** JSONata's $boolean cast, for the values the fast path lets through. */
function truthy(v: unknown): boolean | typeof FALLBACK {
  if (v === undefined || v === null) return false;
  if (typeof v === 'string') return v.length > 0;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'boolean') return v;
  return FALLBACK;
}

// jsonata string functions the fast path runs itself: (string, ...literal-typed args) -> value.
// A first argument that is not a string, or other arguments of the wrong type, fall back.
const STRING_FNS: Record<
  string,
  { args: ('string' | 'number')[]; optional: number; fn: (s: string, ...a: never[]) => unknown }
> = {
  lowercase: { args: [], optional: 0, fn: (s) => s.toLowerCase() },
  uppercase: { args: [], optional: 0, fn: (s) => s.toUpperCase() },
  trim: { args: [], optional: 0, fn: (s) => s.replace(/[ \t\n\r]+/g, ' ').trim() },
  contains: { args: ['string'], optional: 0, fn: (s, p: string) => s.includes(p) },
  substringBefore: {
    args: ['string'],
    optional: 0,
    fn: (s, p: string) => (s.includes(p) ? s.slice(0, s.indexOf(p)) : s),
  },
  substringAfter: {
    args: ['string'],
    optional: 0,
    fn: (s, p: string) => (s.includes(p) ? s.slice(s.indexOf(p) + p.length) : s),
  },
  substring: {
    args: ['number', 'number'],
    optional: 1,
    fn: (s, start: number, length?: number) => {
      // jsonata counts code points and lets a negative start count from the end.
      const cps = Array.from(s);
      const from = start < 0 ? Math.max(0, cps.length + start) : start;
      return cps
        .slice(from, length === undefined ? undefined : from + Math.max(0, length))
        .join('');
    },
  },
};

const fallback: Fast = () => FALLBACK;

/** The AST keys of a path of plain names (what jsonata 2.x gives `data.user.name`). */
const PATH_KEYS = new Set(['type', 'steps', 'position']);
const STEP_KEYS = new Set(['type', 'value', 'position']);

/** An array jsonata treats as a sequence: flattened into a path's result, unwrapped when single. */
const SEQUENCE = Symbol('sequence');
type Seq = unknown[] & { [SEQUENCE]?: true };
const sequence = (): Seq => Object.assign([], { [SEQUENCE]: true as const });
const isSeq = (v: unknown): v is Seq => Array.isArray(v) && (v as Seq)[SEQUENCE] === true;

/** jsonata's lookup of one name: into an object, or into each member of an array, flattened. */
function lookup(input: unknown, key: string): unknown {
  if (Array.isArray(input)) {
    const out = sequence();
    for (const x of input) {
      const r = lookup(x, key);
      if (r === undefined) continue;
      if (Array.isArray(r)) out.push(...(r as unknown[]));
      else out.push(r);
    }
    return out;
  }
  if (input !== null && typeof input === 'object' && Object.hasOwn(input, key))
    return (input as Record<string, unknown>)[key];
  return undefined;
}

/** A sequence as jsonata hands it on: nothing when empty, its member when single. */
const unwrap = (v: unknown): unknown => (isSeq(v) ? (v.length > 1 ? v : v[0]) : v);

/**
 * A path of names as jsonata evaluates it (evaluatePath and evaluateStep, jsonata 2.x): each step
 * looks the name up in every item of the last step's result; arrays along the way are flattened
 * one level per step, except an array that is the last step's single result, which is kept as is.
 * The answer is taken only when it is nothing, a scalar, or a non-empty array of non-null scalars;
 * anything else (an object, an empty array) falls back to jsonata itself.
 */
function namePath(names: string[], root: Record<string, unknown>): unknown {
  let items: unknown[] = [root];
  let result: unknown = undefined;
  for (let k = 0; k < names.length; k++) {
    const found: unknown[] = [];
    for (const item of items) {
      const r = unwrap(lookup(item, names[k]!));
      if (r !== undefined) found.push(r);
    }
    const last = k === names.length - 1;
    if (last && found.length === 1 && Array.isArray(found[0]) && !isSeq(found[0])) {
      result = found[0];
      break;
    }
    const flat = sequence();
    for (const r of found) {
      if (Array.isArray(r)) flat.push(...(r as unknown[]));
      else flat.push(r);
    }
    result = flat;
    if (!flat.length) break;
    items = flat;
  }
  const v = unwrap(result);
  if (v === undefined || isScalar(v)) return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => isScalar(x) && x !== null)) return [...v];
  return FALLBACK;
}

interface Coverage {
  /** Some node is outside the subset (a stub that falls back when reached). */
  partial: boolean;
}

/**
 * Compile what the subset covers. A node outside it becomes a stub that falls back when reached,
 * so `exists(x) ? x : $match(...)` runs fast unless the regex branch is taken. Null when the root
 * itself is outside the subset.
 */
function compileFast(
  node: JNode,
  helpers: Record<string, (...a: unknown[]) => unknown>,
  cov: Coverage,
): Fast | null {
  const c = (n: JNode | undefined): Fast => {
    const f = n ? compileOne(n, c, helpers) : fallback;
    if (f === fallback) cov.partial = true;
    return f;
  };
  const root = c(node);
  return root === fallback ? null : root;
}

function compileOne(
  node: JNode,
  c: (n: JNode | undefined) => Fast,
  helpers: Record<string, (...a: unknown[]) => unknown>,
): Fast {
  switch (node.type) {
    case 'string':
    case 'number':
    case 'value': {
      const v = node.value;
      return () => v;
    }
    case 'path': {
      // Name steps only (`data.user.name`); predicates, wildcards, `[]` and the like fall back.
      // Nothing but names: any other mark on a step or the path (`[]`, `[0]`, `#$i`, `%`, a
      // grouping) means more than a lookup.
      const plain = (n: JNode, keys: ReadonlySet<string>): boolean =>
        Object.keys(n).every((k) => keys.has(k));
      if (!node.steps?.length || !plain(node, PATH_KEYS)) return fallback;
      if (!node.steps.every((step) => step.type === 'name' && plain(step, STEP_KEYS)))
        return fallback;
      const names = node.steps.map((step) => String(step.value));
      return (input) => namePath(names, input);
    }
    case 'variable': {
      const name = String(node.value);
      if (!name) return fallback;
      return (_input, vars) => {
        const v = vars[name];
        return v === undefined || isScalar(v) ? v : FALLBACK;
      };
    }
    case 'block':
      return node.expressions?.length === 1 ? c(node.expressions[0]) : fallback;
    case 'unary': {
      // An array of literals, e.g. the placeholder list in $present(did, ['empty']).
      if (
        node.value !== '[' ||
        !node.expressions?.every((e) => e.type === 'string' || e.type === 'number')
      )
        return fallback;
      const list = node.expressions.map((e) => e.value);
      return () => [...list];
    }
    case 'condition': {
      const cond = c(node.condition);
      const then = c(node.then);
      const els = node.else ? c(node.else) : (): undefined => undefined;
      return (i, v) => {
        const t = cond(i, v);
        if (t === FALLBACK) return FALLBACK;
        const b = truthy(t);
        if (b === FALLBACK) return FALLBACK;
        return b ? then(i, v) : els(i, v);
      };
    }
    case 'binary':
      return compileBinary(node, c);
    case 'function':
      return compileCall(node, c, helpers);
    default:
      return fallback;
  }
}

/** jsonata's $string of a scalar (what `&` joins); lists, objects and infinities fall back. */
function concatText(v: unknown): string | typeof FALLBACK {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean' || v === null) return String(v);
  if (typeof v === 'number' && Number.isFinite(v))
    return String(Number.isInteger(v) ? v : Number(v.toPrecision(15)));
  return FALLBACK;
}

function compileBinary(node: JNode, c: (n: JNode | undefined) => Fast): Fast {
  const op = String(node.value);
  const lhs = c(node.lhs);
  if (op === 'in') {
    // Only `x in ['a', 'b']` with literal scalars on the right.
    const rhs = node.rhs;
    if (
      rhs?.type !== 'unary' ||
      rhs.value !== '[' ||
      !rhs.expressions?.every((e) => e.type === 'string' || e.type === 'number')
    )
      return fallback;
    const set = rhs.expressions.map((e) => e.value);
    return (i, v) => {
      const l = lhs(i, v);
      if (l === FALLBACK) return FALLBACK;
      if (l === undefined) return false;
      return isScalar(l) ? set.includes(l) : FALLBACK;
    };
  }
  const rhs = c(node.rhs);
  switch (op) {
    case '=':
    case '!=':
      return (i, v) => {
        const l = lhs(i, v);
        const r = rhs(i, v);
        if (l === FALLBACK || r === FALLBACK) return FALLBACK;
        if (l === undefined || r === undefined) return false;
        if (!isScalar(l) || !isScalar(r)) return FALLBACK;
        return op === '=' ? l === r : l !== r;
      };
    case '&':
      // Concatenation, as jsonata's $string makes text of each side: nothing is ''.
      return (i, v) => {
        const l = concatText(lhs(i, v));
        const r = concatText(rhs(i, v));
        return l === FALLBACK || r === FALLBACK ? FALLBACK : l + r;
      };
    case 'and':
    case 'or':
      return (i, v) => {
        const l = truthy(lhs(i, v));
        if (l === FALLBACK) return FALLBACK;
        if (op === 'and' ? !l : l) return l;
        const r = rhs(i, v);
        if (r === FALLBACK) return FALLBACK;
        return truthy(r);
      };
    default:
      return fallback;
  }
}

function compileCall(
  node: JNode,
  c: (n: JNode | undefined) => Fast,
  helpers: Record<string, (...a: unknown[]) => unknown>,
): Fast {
  if (node.procedure?.type !== 'variable') return fallback;
  const name = String(node.procedure.value);
  const argFns = (node.arguments ?? []).map((a) => c(a));
  const evalArgs = (i: Record<string, unknown>, v: ExprVars): unknown[] | typeof FALLBACK => {
    const out: unknown[] = [];
    for (const a of argFns) {
      const x = a(i, v);
      if (x === FALLBACK) return FALLBACK;
      out.push(x);
    }
    return out;
  };
  const helper = helpers[name];
  if (helper) {
    return (i, v) => {
      const a = evalArgs(i, v);
      return a === FALLBACK ? FALLBACK : helper(...a);
    };
  }
  const strFn = STRING_FNS[name];
  if (
    strFn &&
    argFns.length >= 1 + strFn.args.length - strFn.optional &&
    argFns.length <= 1 + strFn.args.length
  ) {
    return (i, v) => {
      const a = evalArgs(i, v);
      if (a === FALLBACK) return FALLBACK;
      if (a[0] === undefined) return undefined;
      if (typeof a[0] !== 'string') return FALLBACK;
      for (let k = 1; k < a.length; k++) {
        const want = strFn.args[k - 1];
        if (typeof a[k] !== want || (want === 'number' && !Number.isInteger(a[k]))) return FALLBACK;
      }
      return (strFn.fn as (...x: unknown[]) => unknown)(...a);
    };
  }
  if (name === 'exists' && argFns.length === 1) {
    return (i, v) => {
      const a = evalArgs(i, v);
      return a === FALLBACK ? FALLBACK : a[0] !== undefined;
    };
  }
  if (name === 'not' && argFns.length === 1) {
    return (i, v) => {
      const a = evalArgs(i, v);
      if (a === FALLBACK) return FALLBACK;
      if (a[0] === undefined) return undefined;
      const b = truthy(a[0]);
      return b === FALLBACK ? FALLBACK : !b;
    };
  }
  return fallback;
}

/**
 * Field names an expression reads from the input (path steps) with 0-based offsets, for linting.
 */
export function fieldNames(ast: JNode): { name: string; position: number | undefined }[] {
  const out: { name: string; position: number | undefined }[] = [];
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object') return;
    if (Array.isArray(n)) return n.forEach(walk);
    const node = n as JNode;
    // jsonata positions are 1-based token ends; report 0-based starts.
    if (node.type === 'path') {
      for (const s of node.steps ?? [])
        if (s.type === 'name')
          out.push({
            name: String(s.value),
            position: s.position === undefined ? undefined : s.position - String(s.value).length,
          });
    }
    for (const v of Object.values(node)) if (v && typeof v === 'object') walk(v);
  };
  walk(ast);
  return out;
}

/** Functions an expression calls, with their literal arguments, for linting. */
export function functionCalls(
  ast: JNode,
): { name: string; args: JNode[]; position: number | undefined }[] {
  const out: { name: string; args: JNode[]; position: number | undefined }[] = [];
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object') return;
    if (Array.isArray(n)) return n.forEach(walk);
    const node = n as JNode;
    if (node.type === 'function' && node.procedure?.type === 'variable') {
      const name = String(node.procedure.value);
      const end = node.procedure.position;
      out.push({
        name,
        args: node.arguments ?? [],
        position: end === undefined ? undefined : end - name.length - 1,
      });
    }
    for (const v of Object.values(node)) if (v && typeof v === 'object') walk(v);
  };
  walk(ast);
  return out;
}

/** Names an expression binds itself (`$f := function(...) {...}`): not unknown functions. */
function boundNames(ast: JNode): Set<string> {
  const out = new Set<string>();
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object') return;
    if (Array.isArray(n)) return n.forEach(walk);
    const node = n as JNode;
    if (node.type === 'bind' && node.lhs?.type === 'variable') out.add(String(node.lhs.value));
    for (const v of Object.values(node)) if (v && typeof v === 'object') walk(v);
  };
  walk(ast);
  return out;
}

/**
 * The $functions an expression calls that are neither JSONata's, `known` (the caller's helpers),
 * nor bound by the expression itself: the one check of recipes and targets' expressions alike.
 */
export function unknownCalls(
  ast: JNode,
  known: ReadonlySet<string>,
): { name: string; position: number | undefined }[] {
  const bound = boundNames(ast);
  return functionCalls(ast).filter(
    (c) => !known.has(c.name) && !JSONATA_BUILTINS.has(c.name) && !bound.has(c.name),
  );
}

// jsonata's own functions (jsonata 2.x), so that a misspelt helper is caught at check time
// (adapters, target expressions).
export const JSONATA_BUILTINS = new Set(
  (
    'sum count max min average string substring substringBefore substringAfter lowercase uppercase length trim pad match contains ' +
    'replace split join formatNumber formatBase formatInteger parseInteger number floor ceil round abs sqrt power random boolean not ' +
    'map zip filter single reduce sift keys lookup append exists spread merge reverse each error assert type sort shuffle distinct ' +
    'base64encode base64decode encodeUrlComponent encodeUrl decodeUrlComponent decodeUrl eval toMillis fromMillis clone now millis'
  ).split(/\s+/),
);
