// The fast path must agree with jsonata: every expression of every adapter under adapters/, plus a
// set of edge-case expressions, on every golden request and on random inputs.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { flowRequests } from '../../src/flows.js';
import { compileExpr } from '../../src/lib/expr.js';
import { loadAdapterDir } from '../../src/ingest/adapter.js';
import { makeHelpers } from '../../src/ingest/helpers.js';
import { parseRequest } from '../../src/ingest/request.js';
import { ADAPTERS, goldenCases } from '../support.js';

const adapters = [...loadAdapterDir(ADAPTERS).values()];

function adapterExpressions(): { adapter: string; source: string }[] {
  const out: { adapter: string; source: string }[] = [];
  const walk = (name: string, v: unknown): void => {
    if (typeof v === 'string') out.push({ adapter: name, source: v });
    else if (v && typeof v === 'object') Object.values(v).forEach((x) => walk(name, x));
  };
  for (const a of adapters) {
    walk(a.name, a.def.fields);
    for (const r of a.def.events) {
      out.push({ adapter: a.name, source: r.when });
      walk(a.name, r.fields);
      for (const e of r.emit ?? []) {
        if (e.when) out.push({ adapter: a.name, source: e.when });
        walk(a.name, e.fields);
      }
    }
  }
  return out;
}

/**
 * The adapters the fast path was built for, by name: what it is worth is measured on them, so that
 * an adapter dropped into adapters/ (one of nested paths, say) does not decide whether it pays.
 */
const SHIPPED = ['3cx', '3cx-crm-template', 'callerdesk'];

const EDGE = [
  "a = 'x'",
  'a != b',
  "a in ['1', '2', 3]",
  'a and b',
  'a or b',
  "a ? 'y' : 'n'",
  "a ? 'y'",
  '$lowercase(a)',
  '$uppercase(a)',
  '$trim(a)',
  "$contains(a, 'x')",
  "$substringBefore(a, '-')",
  "$substringAfter(a, '-')",
  '$substring(a, 0, 2)',
  '$substring(a, -2)',
  '$exists(a)',
  'a',
  '$text',
  "'lit'",
  '3',
  'true',
  'null',
  '(a)',
  "$present(a, ['empty'])",
  '$duration(a)',
  '$bool(a)',
  "$beforeLast(a, '-')",
  "$tryUtc(a, 'yyMMddHHmmss')",
  "$tryUtc($substring(a, 0, 12), 'yyMMddHHmmss')",
  // Nested paths.
  'a.b',
  'a.b.c',
  'a.a.a',
  'b.k',
  "a.b = 'x'",
  'a.b != b.c',
  "a.b in ['x', 1]",
  '$exists(a.b.c)',
  '$lowercase(a.b)',
  'a.b ? a.c : b',
  '$duration(a.c)',
  // Concatenation.
  "a & '-' & b",
  'a.b & a.c',
  "'x' & a.b.c",
];

const helpers = makeHelpers({
  timezone: 'Europe/Prague',
  defaultCountry: 'CZ',
  maps: {
    direction: { ringing: 'inbound' },
    finishtype: { ok: 'answered' },
    titleOutcome: {},
    transferKind: {},
    outcome: {},
  },
});

// Compiled once per source: the every-adapter test below asks each expression about every golden
// request, and compiling for each pair made it slow enough to time out on a busy machine.
const compiled = new Map<
  string,
  [ReturnType<typeof compileExpr>, ReturnType<typeof compileExpr>]
>();

async function both(
  source: string,
  input: Record<string, unknown>,
  vars: Record<string, unknown>,
): Promise<[unknown, unknown]> {
  let pair = compiled.get(source);
  if (!pair)
    compiled.set(
      source,
      (pair = [compileExpr(source, helpers), compileExpr(source, helpers, { fast: false })]),
    );
  const [fast, slow] = pair;
  const settle = async (f: () => unknown): Promise<unknown> => {
    try {
      return await f();
    } catch (err) {
      return `error: ${(err as Error).message}`;
    }
  };
  return [
    await settle(() => fast.evaluate(input, vars)),
    await settle(() => slow.evaluate(input, vars)),
  ];
}

describe('expression fast path', () => {
  it('covers the common shapes (or it would not be worth having)', () => {
    expect(adapters.map((a) => a.name)).toEqual(expect.arrayContaining(SHIPPED));
    const exprs = adapterExpressions().filter((e) => SHIPPED.includes(e.adapter));
    const fast = exprs.filter((e) => compileExpr(e.source, helpers).fast).length;
    expect(fast / exprs.length).toBeGreaterThan(0.7);
    // 3CX's start from its call id runs on every request.
    expect(compileExpr("$tryUtc($substring(id, 0, 12), 'yyMMddHHmmss')", helpers).fast).toBe(true);
  });

  it('agrees with jsonata on every adapter expression and every golden request', async () => {
    const inputs = goldenCases().flatMap((c) =>
      flowRequests(c.flow, c.adapter).map((r) => parseRequest(r)),
    );
    for (const { source } of [...adapterExpressions(), ...EDGE.map((source) => ({ source }))]) {
      for (const input of inputs) {
        const [f, s] = await both(source, input.fields, { text: input.text, kind: 'webhook' });
        expect(f, `${source} on ${JSON.stringify(input.fields)}`).toEqual(s);
      }
    }
  });

  it('takes nested paths itself, as jsonata reads them, and leaves objects to jsonata', async () => {
    const path = (source: string) => compileExpr(source, helpers);
    expect(path('data.user.name').fast).toBe(true);
    // Anything but plain names is jsonata's: `[]`, a filter, an index, a wildcard, the parent.
    for (const source of ['data.user[]', 'data[0].id', 'data.*', 'data#$i.id', 'data.user.%.id'])
      expect(path(source).fast, source).toBe(false);
    const cases: [string, Record<string, unknown>, unknown][] = [
      ['data.id', { data: { id: 812 } }, 812],
      ['data.user.name', { data: { user: { name: 'Ann' } } }, 'Ann'],
      ['data.user.name', { data: { user: null } }, undefined],
      ['data.user.name', { data: 'x' }, undefined],
      ['data.user.name', {}, undefined],
      ['data.user.name', { data: { user: { name: null } } }, null],
      ['payload.object.x', { payload: { object: { x: true } } }, true],
      // Arrays along the path: each member looked into, the answers flattened.
      ['data.legs.id', { data: { legs: [{ id: 'a' }, { id: 'b' }] } }, ['a', 'b']],
      ['data.legs.id', { data: { legs: [{ id: 'a' }, { x: 1 }] } }, 'a'],
      ['data.legs.id', { data: [{ legs: [{ id: 1 }] }, { legs: { id: 2 } }] }, [1, 2]],
      ['data.legs.id', { data: { legs: [[{ id: 1 }, { id: 2 }], [{ id: 3 }]] } }, [1, 2, 3]],
      ['data.legs.id', { data: { legs: [] } }, undefined],
      ['data.tags', { data: { tags: ['a', 'b'] } }, ['a', 'b']],
      ['data.tags', { data: { tags: ['a'] } }, ['a']],
      ['data.tags', { data: [{ tags: ['a'] }, { tags: ['b', 'c'] }] }, ['a', 'b', 'c']],
      ['data.tags', { data: [{ tags: ['a'] }] }, ['a']],
      ['data.toString', { data: {} }, undefined],
    ];
    for (const [source, input, want] of cases) {
      const v = path(source).evaluate(input, {});
      expect(v instanceof Promise, `${source} on ${JSON.stringify(input)} is fast`).toBe(false);
      expect(v, source).toEqual(want);
      expect(await both(source, input, {}), source).toEqual([want, want]);
    }
    // Text of each side of `&`, as jsonata's $string makes it.
    const joins: [Record<string, unknown>, string][] = [
      [{ data: { id: 812, user: { id: 'u7' } } }, '812-u7'],
      [{ data: { id: 0.1 + 0.2, user: { id: true } } }, '0.3-true'],
      [{ data: { id: 1e21, user: { id: null } } }, '1e+21-null'],
      [{ data: { id: -0 } }, '0-'],
      [{}, '-'],
    ];
    for (const [input, want] of joins) {
      const v = path("data.id & '-' & data.user.id").evaluate(input, {});
      expect(v instanceof Promise, JSON.stringify(input)).toBe(false);
      expect(await both("data.id & '-' & data.user.id", input, {})).toEqual([want, want]);
    }
    // Objects (and an empty list) at the end are jsonata's to answer.
    for (const input of [{ data: { user: { id: 1 } } }, { data: { user: [] } }]) {
      expect(path('data.user').evaluate(input, {})).toBeInstanceOf(Promise);
      const [f, s] = await both('data.user', input, {});
      expect(f).toEqual(s);
    }
  });

  it('agrees with jsonata on nested paths over random nested inputs', async () => {
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constantFrom('x', '', 'A', 1, 0, true, false, null),
        fc.array(tie('tree'), { maxLength: 3 }),
        fc.record({ a: tie('tree'), b: tie('tree'), c: tie('tree') }, { requiredKeys: [] }),
      ),
    }));
    const nested = EDGE.filter((e) => /[a-c]\.[a-c]|&/.test(e));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...nested),
        fc.record({ a: tree, b: tree }, { requiredKeys: [] }),
        async (source, fields) => {
          const [f, s] = await both(source, fields, {});
          expect(f).toEqual(s);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('agrees with jsonata on random inputs', async () => {
    const value = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom('', 'x', 'X-1', 'empty', 'True', 'false', '00:06', 'a-b-c'),
      fc.integer({ min: -3, max: 3 }),
      // What JSON can carry: no NaN, no infinities.
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }),
      fc.record({ k: fc.string() }),
    );
    const input = fc.record({ a: value, b: value }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...EDGE),
        input,
        fc.option(fc.string({ maxLength: 4 }), { nil: undefined }),
        async (source, fields, text) => {
          const [f, s] = await both(source, fields, { text });
          expect(f).toEqual(s);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
