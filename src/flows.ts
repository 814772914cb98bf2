// Call flows: a recorded sequence of a provider's requests plus what the relay must conclude
// (the format of the golden cases under adapters/cases/). Running a flow goes through the real
// pipeline and an in-memory SQLite store, exactly as the server would process it.

import { readFileSync } from 'node:fs';
import type { MapResult, RawRequest } from './domain/request.js';
import type { CountryCode } from 'libphonenumber-js';
import type { CallRecord } from './domain/model.js';
import type { LoadedAdapter } from './ingest/adapter.js';
import { Pipeline } from './pipeline/pipeline.js';
import { SqliteStore } from './store/sqlite/index.js';

export interface FlowRequest {
  label?: string;
  direction?: 'to-pbx';
  method: string;
  contentType?: string;
  body?: string;
  query?: string;
  path?: string;
  responseBody?: string;
}

export interface Flow {
  name: string;
  origin?: string;
  notes?: string;
  source?: { timezone?: string; defaultCountry?: string };
  requests: FlowRequest[];
  expect?: { calls: Record<string, unknown>[] };
}

export function readFlow(path: string): Flow {
  const flow = JSON.parse(readFileSync(path, 'utf8')) as Flow;
  if (!flow || !Array.isArray(flow.requests))
    throw new Error(`${path}: not a flow file (no "requests" list)`);
  return flow;
}

/** The stored form of a flow's requests; receive times one second apart from `start`. */
export function flowRequests(
  flow: Flow,
  source: string,
  start = Date.parse('2026-01-01T00:00:00Z'),
): RawRequest[] {
  return flow.requests.map((r, i): RawRequest => {
    const receivedAt = new Date(start + i * 1000).toISOString();
    if (r.direction === 'to-pbx') {
      const q = r.path?.includes('?') ? r.path.slice(r.path.indexOf('?') + 1) : '';
      return {
        source,
        kind: 'pbx-response',
        receivedAt,
        method: r.method,
        query: q,
        contentType: 'application/json',
        headers: {},
        body: Buffer.from(r.responseBody ?? ''),
      };
    }
    return {
      source,
      kind: 'webhook',
      receivedAt,
      method: r.method,
      query: r.query ?? '',
      contentType: r.contentType ?? null,
      headers: r.contentType ? { 'content-type': r.contentType } : {},
      body: Buffer.from(r.body ?? ''),
    };
  });
}

export interface FlowRun {
  steps: { label: string; inboxId: number; result: MapResult }[];
  calls: CallRecord[];
}

export async function runFlow(
  flow: Flow,
  adapter: LoadedAdapter,
  settings: {
    timezone?: string;
    defaultCountry?: string;
    /** The source's name in the calls (default: the adapter's). */
    source?: string;
  } = {},
): Promise<FlowRun> {
  const store = new SqliteStore(':memory:');
  try {
    const source = settings.source ?? adapter.name;
    const pipeline = new Pipeline(store, [
      {
        name: source,
        token: 'flow-runner-token',
        adapter,
        timezone:
          settings.timezone ?? flow.source?.timezone ?? adapter.def.defaults.timezone ?? 'UTC',
        defaultCountry: (settings.defaultCountry ??
          flow.source?.defaultCountry ??
          adapter.def.defaults.defaultCountry) as CountryCode | undefined,
      },
    ]);
    const steps: FlowRun['steps'] = [];
    const reqs = flowRequests(flow, source);
    for (const [i, req] of reqs.entries()) {
      const { id, result } = await pipeline.ingest(req);
      steps.push({ label: flow.requests[i]!.label ?? `request ${i + 1}`, inboxId: id, result });
    }
    await pipeline.drain();
    const calls = (await store.listCalls({ limit: 10_000 }))
      .map((r) => r.record)
      .sort((a, b) => (a.callId < b.callId ? -1 : 1));
    return { steps, calls };
  } finally {
    await store.close();
  }
}

const SET_FIELDS = new Set(['recordings', 'legs', 'transfers']);

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v ?? null);
}

/**
 * Differences between a flow's `expect.calls` and the records it produced: one entry per distinct
 * call; fields an entry leaves out are not checked; recordings, legs and transfers compare as sets;
 * `ai` compares the keys the entry gives.
 */
export function compareCalls(expected: Record<string, unknown>[], actual: CallRecord[]): string[] {
  const out: string[] = [];
  const byId = new Map(actual.map((c) => [c.callId, c]));
  for (const exp of expected) {
    const id = String(exp.callId);
    const act = byId.get(id) as unknown as Record<string, unknown> | undefined;
    if (!act) {
      out.push(`call ${id}: missing (got ${[...byId.keys()].join(', ') || 'no calls'})`);
      continue;
    }
    for (const [field, want] of Object.entries(exp)) {
      const got = act[field];
      let same: boolean;
      if (SET_FIELDS.has(field) && Array.isArray(want) && Array.isArray(got))
        same = stable([...want.map(stable)].sort()) === stable([...got.map(stable)].sort());
      else if (
        field === 'ai' &&
        want &&
        typeof want === 'object' &&
        got &&
        typeof got === 'object'
      ) {
        same = Object.entries(want).every(
          ([k, v]) => stable(v) === stable((got as Record<string, unknown>)[k]),
        );
      } else same = stable(want) === stable(got);
      if (!same)
        out.push(
          `call ${id}: ${field} expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`,
        );
    }
  }
  const expectedIds = new Set(expected.map((e) => String(e.callId)));
  for (const c of actual)
    if (!expectedIds.has(c.callId)) out.push(`call ${c.callId}: not expected`);
  return out;
}
