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

async function both(
  source: string,
  input: Record<string, unknown>,
  vars: Record<string, unknown>,
): Promise<[unknown, unknown]> {
  const fast = compileExpr(source, helpers);
  const slow = compileExpr(source, helpers, { fast: false });
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

  it('agrees with jsonata on random inputs', async () => {
    const value = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom('', 'x', 'X-1', 'empty', 'True', 'false', '00:06', 'a-b-c'),
      fc.integer({ min: -3, max: 3 }),
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
