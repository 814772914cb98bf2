// `callrelay map FLOW --target NAME`: the flow through the adapter of the source the target is
// routed from, then each call it makes through that target as a dry run (its sandbox answers;
// nothing leaves the machine, no credentials needed), printing the requests the target would
// send with their bodies. Built on the target interface and the dry-run traces only, so every
// target type gets it.

import { matches } from '../domain/routing.js';
import type { RelayConfig } from '../config/load.js';
import type { Flow } from '../flows.js';
import { runFlow } from '../flows.js';
import type { LoadedAdapter } from '../ingest/adapter.js';
import { targetRecordings } from '../recordings/links.js';
import { loadTarget } from '../targets/registry.js';
import { dryRunDelivery } from '../targets/kit/dry-run.js';
import { createLogger } from '../telemetry/log.js';
import { fail } from './util.js';

interface MappedRequest {
  operation: string;
  method: string;
  path: string;
  status: number | null;
  /** The JSON sent (parsed), or the text the trace kept; null for a read. */
  body: unknown;
  error: string | null;
}

interface MappedCall {
  source: string;
  callId: string;
  /** Whether relay.yaml's routes send this call to the target (filters included). */
  routed: boolean;
  requests: MappedRequest[];
  /** Why the delivery stopped, if it did (an expression error, a refused value). */
  error: string | null;
}

/** The source the target is routed from: the first under sources: that a route names with it. */
function routedSource(
  cfg: RelayConfig,
  target: string,
): RelayConfig['sources'][number] | undefined {
  return cfg.sources.find((s) =>
    cfg.routing.routes.some(
      (r) => r.targets.includes(target) && (!r.sources || r.sources.includes(s.name)),
    ),
  );
}

const parsed = (sent: string | null | undefined): unknown => {
  if (sent === null || sent === undefined) return null;
  try {
    return JSON.parse(sent) as unknown;
  } catch {
    return sent;
  }
};

export async function mapThroughTarget(
  cfg: RelayConfig,
  flow: Flow,
  values: { target: string; adapter?: LoadedAdapter; timezone?: string; country?: string },
): Promise<{ source: string; adapter: string; calls: MappedCall[] }> {
  const target = cfg.targets.find((t) => t.name === values.target);
  if (!target)
    return fail(
      `no target "${values.target}" in ${cfg.file} (targets: ${cfg.targets.map((t) => t.name).join(', ') || 'none'})`,
    );
  const source = routedSource(cfg, target.name);
  const adapter = values.adapter ?? source?.adapter;
  if (!adapter)
    return fail(`no source is routed to target "${target.name}": name an adapter with --adapter`);
  // The routed source's name and settings, unless --adapter names another provider's adapter.
  const same = source && source.adapter.name === adapter.name ? source : undefined;
  const sourceName = same?.name ?? adapter.name;
  const run = await runFlow(flow, adapter, {
    timezone: values.timezone ?? flow.source?.timezone ?? same?.timezone,
    defaultCountry: values.country ?? flow.source?.defaultCountry ?? same?.defaultCountry,
    source: sourceName,
  });
  const log = createLogger('silent');
  const mod = await loadTarget(target.type);
  // A dry run whatever relay.yaml says: the sandbox answers, the bodies are kept in the trace.
  const t = mod.create({ ...target, dryRun: true }, { log, ...targetRecordings(cfg) });
  const calls: MappedCall[] = [];
  try {
    for (const [i, record] of run.calls.entries()) {
      const { traces, error } = await dryRunDelivery(t, record, log, i + 1);
      const routed = cfg.routing.routes.some(
        (r) =>
          r.targets.includes(target.name) &&
          (!r.sources || r.sources.includes(record.source)) &&
          matches(record, r.filter),
      );
      calls.push({
        source: record.source,
        callId: record.callId,
        routed,
        requests: traces
          .filter((x) => !x.note && !x.copy)
          .map((x) => ({
            operation: x.operation,
            method: x.method,
            path: x.path,
            status: x.status,
            body: parsed(x.sent),
            error: x.error,
          })),
        error,
      });
    }
  } finally {
    await t.close();
  }
  return { source: sourceName, adapter: adapter.name, calls };
}

/** The requests per call, as `map --target` prints them. */
export function formatMapped(
  flow: string,
  target: string,
  m: { source: string; adapter: string; calls: MappedCall[] },
): string {
  const out = [
    `flow ${flow} through source ${m.source} (adapter ${m.adapter}) into target ${target}, as a dry run`,
  ];
  if (!m.calls.length) out.push('', 'the flow makes no call');
  for (const c of m.calls) {
    out.push(
      '',
      `call ${c.source}/${c.callId}${c.routed ? '' : " (relay.yaml's routes do not send it to this target)"}`,
    );
    for (const r of c.requests) {
      out.push(`  ${r.method} ${r.path}  (${r.operation})${r.error ? `: ${r.error}` : ''}`);
      if (r.body !== null)
        out.push(
          JSON.stringify(r.body, null, 2)
            .split('\n')
            .map((l) => `    ${l}`)
            .join('\n'),
        );
    }
    if (c.error) out.push(`  stopped: ${c.error}`);
  }
  return `${out.join('\n')}\n`;
}
