// Golden cases: every flow under adapters/cases/<adapter>/ runs through the real pipeline (adapter,
// in-memory SQLite store, folding) and must produce exactly its `expect.calls`, also with its
// requests delivered in reverse, and shuffled with one of them delivered twice (providers retry,
// and a relay that was down gets a backlog in any order). Adding a case is adding a file; no code
// changes.

import { describe, expect, it } from 'vitest';
import type { CallRecord } from '../src/domain/model.js';
import { compareCalls, runFlow, type Flow, type FlowRun } from '../src/flows.js';
import { loadAdapterDir } from '../src/ingest/adapter.js';
import { ADAPTERS, goldenCases } from './support.js';

const adapters = loadAdapterDir(ADAPTERS);
const cases = goldenCases();

/** A small seeded generator (mulberry32): the same case shuffles the same way on every run. */
function seeded(text: string): () => number {
  let a = [...text].reduce((h, ch) => Math.imul(h ^ ch.charCodeAt(0), 16777619), 2166136261);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The flow's requests shuffled (seeded by its name), one of them delivered a second time. */
function shuffledWithRepeat(flow: Flow): Flow['requests'] {
  const rnd = seeded(flow.name);
  const out = [...flow.requests];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  const again = out[Math.floor(rnd() * out.length)]!;
  out.splice(Math.floor(rnd() * (out.length + 1)), 0, again);
  return out;
}

/**
 * `rang` is in the order the phones rang; a provider that sends no times for it (3CX) leaves the
 * order of arrival as the only evidence, so in another order only who rang can be compared. Where
 * every ring the case maps carries the provider's time (Twilio, Aircall, the CI probe), the order
 * is the expected one in any order of delivery.
 */
const rangAsSet = <T extends Record<string, unknown>>(c: T): T =>
  Array.isArray(c.rang) ? { ...c, rang: [...(c.rang as string[])].sort() } : c;
const ringsUntimed = (run: FlowRun): boolean =>
  run.steps.some(
    (s) =>
      s.result.status === 'mapped' &&
      s.result.events.some((e) => e.type === 'ringing' && e.agent && e.at === undefined),
  );

async function expectGolden(c: (typeof cases)[number], requests: Flow['requests']): Promise<void> {
  const run = await runFlow({ ...c.flow, requests }, adapters.get(c.adapter)!);
  for (const s of run.steps)
    expect(s.result.status, `${s.label}: ${JSON.stringify(s.result)}`).toBe('mapped');
  const expected = c.flow.expect!.calls;
  const rangBySet = requests !== c.flow.requests && ringsUntimed(run);
  expect(
    rangBySet
      ? compareCalls(
          expected.map(rangAsSet),
          run.calls.map((r) => rangAsSet(r as unknown as Record<string, unknown>) as CallRecord),
        )
      : compareCalls(expected, run.calls),
  ).toEqual([]);
}

describe('golden cases', () => {
  it('finds a case for every shipped adapter, and an adapter for every case folder', () => {
    expect(new Set(cases.map((c) => c.adapter))).toEqual(new Set(adapters.keys()));
    expect(cases.length).toBeGreaterThanOrEqual(26);
  });

  const named = cases.map((c) => [`${c.adapter}/${c.flow.name}`, c] as const);

  it.each(named)('%s', async (_name, c) => {
    expect(c.flow.expect?.calls.length, 'a golden case needs expect.calls').toBeGreaterThan(0);
    await expectGolden(c, c.flow.requests);
  });

  it.each(named)('%s, requests in reverse', async (_name, c) => {
    await expectGolden(c, [...c.flow.requests].reverse());
  });

  it.each(named)('%s, requests shuffled and one sent twice', async (_name, c) => {
    await expectGolden(c, shuffledWithRepeat(c.flow));
  });
});
