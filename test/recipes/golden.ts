// The golden runner for REST recipes: every recipe in a folder (the shipped targets/, or any other)
// must load and compile, and each of its cases (cases/<recipe>/*.json beside it) must hold: a
// call record, or a sample flow folded into one, delivered as a dry run with the case's vars and
// agents, makes the requests the case lists (method, path, body) in that order. A case's path with
// a query ("/v1/contacts?phone=...") must match the query too; one without matches any query.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CallRecord } from '../../src/domain/model.js';
import { readFlow, runFlow } from '../../src/flows.js';
import { loadAdapterDir } from '../../src/ingest/adapter.js';
import { dryRunDelivery } from '../../src/targets/kit/dry-run.js';
import type { RequestTrace } from '../../src/targets/kit/trace.js';
import { loadRecipe, recipeFiles } from '../../src/targets/rest/recipe.js';
import type { RestConfig } from '../../src/targets/rest/spec.js';
import { create } from '../../src/targets/rest/target.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { ADAPTERS } from '../support.js';

export interface RecipeCase {
  /** "<adapter>/<flow>" under adapters/cases/, folded into its call records. */
  flow?: string;
  /** Which call of the flow (default: the first). */
  callId?: string;
  record?: CallRecord;
  vars?: Record<string, string>;
  agents?: Record<string, string>;
  expect: { requests: { method: string; path: string; body?: unknown }[] };
}

export interface CaseResult {
  recipe: string;
  case: string;
  /** What did not hold (empty: the case holds). */
  problems: string[];
}

/** A body as sent: JSON, or a form's fields. */
function parsed(sent: string | null | undefined): unknown {
  if (sent === null || sent === undefined) return undefined;
  try {
    return JSON.parse(sent) as unknown;
  } catch {
    return Object.fromEntries(new URLSearchParams(sent));
  }
}

async function recordOf(c: RecipeCase): Promise<CallRecord> {
  if (c.record) return c.record;
  const [adapter, name] = c.flow!.split('/');
  const flow = readFlow(join(ADAPTERS, 'cases', adapter!, `${name}.json`));
  const { calls } = await runFlow(flow, loadAdapterDir(ADAPTERS).get(adapter!)!);
  const call = c.callId ? calls.find((x) => x.callId === c.callId) : calls[0];
  if (!call) throw new Error(`${c.flow}: no call ${c.callId ?? ''}`);
  return call;
}

/** The requests a dry run of `recipeFile` makes for a case. */
export async function dryRun(recipeFile: string, c: RecipeCase): Promise<RequestTrace[]> {
  const { def } = loadRecipe(recipeFile);
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(def.vars))
    if (v.default !== undefined) vars[k] = String(v.default);
  Object.assign(vars, c.vars);
  const target = create(
    {
      name: 'golden',
      type: 'rest',
      recipe: recipeFile,
      recipeFile,
      recipeSha: '',
      vars,
      agents: c.agents ?? {},
      cacheSec: 600,
      deliverOn: 'ended',
      settleSec: 0,
      rateLimit: { requests: 1000, perSeconds: 1 },
      concurrency: 1,
      timeoutSec: 15,
      retryForHours: 24,
      dryRun: true,
    } as RestConfig,
    { log: silentLogger, recordings: {} },
  );
  const record = await recordOf(c);
  try {
    const { traces, error } = await dryRunDelivery(target, record, silentLogger);
    if (error) throw new Error(error);
    return traces;
  } finally {
    await target.close();
  }
}

/** Every recipe in `dir` and each of its cases, run. */
export async function runRecipes(dir: string): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const [name, file] of recipeFiles(dir)) {
    try {
      loadRecipe(file);
    } catch (err) {
      out.push({ recipe: name, case: '(load)', problems: [(err as Error).message] });
      continue;
    }
    const cases = join(dir, 'cases', name);
    const files = existsSync(cases) ? readdirSync(cases).filter((f) => f.endsWith('.json')) : [];
    if (!files.length) out.push({ recipe: name, case: '(load)', problems: [] });
    for (const f of files.sort()) {
      const c = JSON.parse(readFileSync(join(cases, f), 'utf8')) as RecipeCase;
      const problems: string[] = [];
      try {
        const traces = (await dryRun(file, c)).filter((t) => !t.note);
        let from = 0;
        for (const want of c.expect.requests) {
          const pathOf = (p: string) => (want.path.includes('?') ? p : p.split('?')[0]);
          const i = traces.findIndex(
            (t, j) => j >= from && t.method === want.method && pathOf(t.path) === want.path,
          );
          if (i < 0) {
            problems.push(`no ${want.method} ${want.path} (in order) among the requests made`);
            continue;
          }
          from = i + 1;
          const got = parsed(traces[i]!.sent);
          if (want.body !== undefined && JSON.stringify(got) !== JSON.stringify(want.body))
            problems.push(
              `${want.method} ${want.path}: body ${JSON.stringify(got)}, expected ${JSON.stringify(want.body)}`,
            );
        }
      } catch (err) {
        problems.push((err as Error).message);
      }
      out.push({ recipe: name, case: f, problems });
    }
  }
  return out;
}
