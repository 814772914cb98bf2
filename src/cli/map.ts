// `callrelay map`: run a flow (a golden case's JSON) through one adapter and print the events and
// calls it produces; exits 1 when the flow's `expect` does not hold, so adapters can be tried
// without a relay or a store. With --target, the calls go on through that target as a dry run
// and the requests it would send are printed instead (map-target.ts).

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { BUNDLED_ADAPTERS } from '../config/load.js';
import { compareCalls, readFlow, runFlow } from '../flows.js';
import { loadAdapter, loadAdapterDir, type LoadedAdapter } from '../ingest/adapter.js';
import { mapThroughTarget, formatMapped } from './map-target.js';
import { configFrom, fail } from './util.js';

/** A path to an adapter file, or the name of one in ./adapters or else the bundled ones. */
function findAdapter(spec: string): LoadedAdapter {
  if (/[\\/]|\.ya?ml$/.test(spec) || existsSync(spec)) return loadAdapter(resolve(spec));
  for (const dir of [resolve('adapters'), BUNDLED_ADAPTERS]) {
    const a = loadAdapterDir(dir).get(spec);
    if (a) return a;
  }
  return fail(`no adapter named "${spec}" in ./adapters or the bundled adapters`);
}

export async function cmdMap(
  file: string,
  values: {
    adapter?: string;
    target?: string;
    config?: string;
    timezone?: string;
    country?: string;
    json?: boolean;
  },
): Promise<void> {
  if (values.target !== undefined) return cmdMapTarget(file, { ...values, target: values.target });
  if (!values.adapter) return fail('map: name an adapter (--adapter) or a target (--target)', 2);
  const adapter = findAdapter(values.adapter);
  const flow = readFlow(file);
  const run = await runFlow(flow, adapter, {
    timezone: values.timezone,
    defaultCountry: values.country,
  });
  const diffs = flow.expect ? compareCalls(flow.expect.calls, run.calls) : [];
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ flow: flow.name, steps: run.steps, calls: run.calls, mismatches: diffs }, null, 2)}\n`,
    );
  } else {
    const out: string[] = [`flow ${flow.name} through adapter ${adapter.name}`, ''];
    for (const s of run.steps) {
      const r = s.result;
      const head = `#${s.inboxId} ${s.label}`;
      if (r.status === 'mapped')
        for (const e of r.events) out.push(`${head}\n    ${r.rule} -> ${JSON.stringify(e)}`);
      else
        out.push(
          `${head}\n    ${r.status}${r.status === 'unmapped' ? ` ${r.code}: ${r.message}` : `: ${r.message}`}`,
        );
    }
    out.push('', `${run.calls.length} call(s):`);
    for (const c of run.calls)
      out.push(JSON.stringify({ ...c, events: `${c.events.length} events` }, null, 2));
    if (flow.expect)
      out.push(
        '',
        diffs.length
          ? `expect: ${diffs.length} mismatch(es)\n  ${diffs.join('\n  ')}`
          : 'expect: all expected calls hold',
      );
    process.stdout.write(`${out.join('\n')}\n`);
  }
  if (diffs.length) process.exit(1);
}

async function cmdMapTarget(
  file: string,
  values: {
    adapter?: string;
    target: string;
    config?: string;
    timezone?: string;
    country?: string;
    json?: boolean;
  },
): Promise<void> {
  // A dry run needs no CRM credentials: unset variables are allowed as for read-only commands.
  const cfg = configFrom(values, { readOnly: true });
  const flow = readFlow(file);
  const m = await mapThroughTarget(cfg, flow, {
    target: values.target,
    ...(values.adapter ? { adapter: findAdapter(values.adapter) } : {}),
    ...(values.timezone ? { timezone: values.timezone } : {}),
    ...(values.country ? { country: values.country } : {}),
  });
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ flow: flow.name, target: values.target, ...m }, null, 2)}\n`
      : formatMapped(flow.name, values.target, m),
  );
  if (m.calls.some((c) => c.error)) process.exit(1);
}
