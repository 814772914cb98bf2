// Golden cases: every flow under adapters/cases/<adapter>/ runs through the real pipeline (adapter,
// in-memory SQLite store, folding) and must produce exactly its `expect.calls`. Adding a case is
// adding a file; no code changes.

import { describe, expect, it } from 'vitest';
import { compareCalls, runFlow } from '../src/flows.js';
import { loadAdapterDir } from '../src/ingest/adapter.js';
import { ADAPTERS, goldenCases } from './support.js';

const adapters = loadAdapterDir(ADAPTERS);
const cases = goldenCases();

describe('golden cases', () => {
  it('finds a case for every shipped adapter, and an adapter for every case folder', () => {
    expect(new Set(cases.map((c) => c.adapter))).toEqual(new Set(adapters.keys()));
    expect(cases.length).toBeGreaterThanOrEqual(26);
  });

  it.each(cases.map((c) => [`${c.adapter}/${c.flow.name}`, c] as const))('%s', async (_name, c) => {
    expect(c.flow.expect?.calls.length, 'a golden case needs expect.calls').toBeGreaterThan(0);
    const run = await runFlow(c.flow, adapters.get(c.adapter)!);
    for (const s of run.steps)
      expect(s.result.status, `${s.label}: ${JSON.stringify(s.result)}`).toBe('mapped');
    expect(compareCalls(c.flow.expect!.calls, run.calls)).toEqual([]);
  });
});
