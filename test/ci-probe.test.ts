// The adapter .ci/run drops into adapters/ (test/fixtures/ci-probe/) keeps its own golden cases
// true as the model moves on, so that CI's probe fails only for what it is there to find: a test
// that assumes the shipped adapters.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareCalls, readFlow, runFlow } from '../src/flows.js';
import { loadAdapter } from '../src/ingest/adapter.js';
import { ROOT } from './support.js';

const DIR = join(ROOT, 'test', 'fixtures', 'ci-probe');
const adapter = loadAdapter(join(DIR, 'ci-probe.yaml'));
const cases = readdirSync(join(DIR, 'cases'))
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => readFlow(join(DIR, 'cases', f)));

describe('the CI probe adapter', () => {
  it('is named for its folder and has golden cases', () => {
    expect(adapter.name).toBe('ci-probe');
    expect(cases.length).toBeGreaterThanOrEqual(2);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_n, flow) => {
    const run = await runFlow(flow, adapter);
    for (const s of run.steps)
      expect(s.result.status, `${s.label}: ${JSON.stringify(s.result)}`).toBe('mapped');
    expect(compareCalls(flow.expect!.calls, run.calls)).toEqual([]);
  });

  it('is as unlike the shipped adapters as it says: query values, several events of one webhook', async () => {
    const transferred = cases.find((c) => c.name === 'ci-probe-inbound-transferred')!;
    expect(transferred.requests.every((r) => r.method === 'POST' && r.query)).toBe(true);
    const run = await runFlow(transferred, adapter);
    const made = run.steps.map((s) => (s.result.status === 'mapped' ? s.result.events.length : 0));
    expect(made).toContain(2);
    // Leg ids that say nothing of their order.
    expect(run.calls[0]!.legs.map((l) => l.legId)).toEqual([
      expect.stringMatching(/^[0-9a-f]{10}$/),
      expect.stringMatching(/^[0-9a-f]{10}$/),
    ]);
  });
});
