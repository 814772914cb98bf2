// `callrelay simulate`: send the bundled sample call flows (the adapters' golden cases, shipped in
// the package) to a running relay, as the phone system would, so that a new user sees calls, the
// console and a dry-run target's requests before connecting a PBX. Each run is a new call: the
// flow's call ids are replaced by fresh ones, so that simulating twice makes two calls.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLED_ADAPTERS, type RelayConfig, type ResolvedSource } from '../config/load.js';
import { readFlow, type Flow } from '../flows.js';
import { configFrom, fail, printTable } from './util.js';

interface BundledFlow {
  name: string;
  adapter: string;
  flow: Flow;
}

/** Flows under <adapters>/cases/<adapter>/, the relay's adapter folder first, then the bundled. */
function findFlows(cfg: RelayConfig): BundledFlow[] {
  const byName = new Map<string, BundledFlow>();
  for (const dir of new Set([join(cfg.adaptersDir, 'cases'), join(BUNDLED_ADAPTERS, 'cases')])) {
    if (!existsSync(dir)) continue;
    for (const adapter of readdirSync(dir, { withFileTypes: true })) {
      if (!adapter.isDirectory()) continue;
      for (const f of readdirSync(join(dir, adapter.name)).sort()) {
        const name = f.replace(/\.json$/, '');
        if (f.endsWith('.json') && !byName.has(name))
          byName.set(name, {
            name,
            adapter: adapter.name,
            flow: readFlow(join(dir, adapter.name, f)),
          });
      }
    }
  }
  return [...byName.values()];
}

/** What a flow's calls are, from its `expect`: "inbound answered". */
const about = (f: Flow): string =>
  (f.expect?.calls ?? []).map((c) => [c.direction, c.outcome].filter(Boolean).join(' ')).join(', ');

/**
 * A new id of the same shape: the first run of digits (a 3CX id's date, Callerdesk's epoch)
 * becomes as many digits of `stamp`, so that the adapter reads it as before; an id without one
 * gets a suffix.
 */
export function freshCallId(id: string, stamp: number): string {
  const m = /\d{6,}/.exec(id);
  if (!m) return `${id}-sim${stamp}`;
  const digits = String(stamp).padStart(m[0].length, '0').slice(-m[0].length);
  return id.slice(0, m.index) + digits + id.slice(m.index + m[0].length);
}

/** The flow's webhook requests, each call id replaced (responses to the relay are skipped). */
function rewrite(flow: Flow, ids: Map<string, string>): Flow['requests'] {
  const swap = (s: string | undefined): string | undefined => {
    if (s === undefined) return s;
    for (const [from, to] of ids) s = s.split(from).join(to);
    return s;
  };
  return flow.requests
    .filter((r) => r.direction !== 'to-pbx')
    .map((r) => ({ ...r, body: swap(r.body), query: swap(r.query) }));
}

function relayUrl(cfg: RelayConfig, to: string | undefined): string {
  if (to) return to.replace(/\/+$/, '');
  // A relay listening on every interface is reached on loopback from here.
  const host = /^(0\.0\.0\.0|::|\[::\])$/.test(cfg.server.host) ? '127.0.0.1' : cfg.server.host;
  const scheme = cfg.server.tls ? 'https' : 'http';
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${cfg.server.port}`;
}

export async function cmdSimulate(
  names: string[],
  o: { config?: string; all?: boolean; list?: boolean; to?: string },
): Promise<void> {
  const cfg = configFrom(o, { readOnly: true });
  const flows = findFlows(cfg);
  const sourceOf = (f: BundledFlow): ResolvedSource | undefined =>
    cfg.sources.find((s) => s.adapter.name === f.adapter);
  if (o.list || (!names.length && !o.all)) {
    printTable(
      flows.map((f) => ({
        flow: f.name,
        source: sourceOf(f)?.name ?? `(no source uses adapter ${f.adapter})`,
        requests: f.flow.requests.filter((r) => r.direction !== 'to-pbx').length,
        calls: about(f.flow),
      })),
      'no flows found',
    );
    if (!o.list)
      process.stdout.write('\nsend some: callrelay simulate FLOW ... (or --all, every flow)\n');
    return;
  }
  const unknown = names.filter((n) => !flows.some((f) => f.name === n));
  if (unknown.length)
    fail(`no flow named ${unknown.join(', ')} (callrelay simulate --list shows them)`, 2);
  const chosen = o.all
    ? flows.filter((f) => sourceOf(f))
    : names.map((n) => flows.find((f) => f.name === n)!);
  const base = relayUrl(cfg, o.to);
  let stamp = Date.now();
  let sent = 0;
  let refused = 0;
  const made: string[] = [];
  for (const f of chosen) {
    const source = sourceOf(f);
    if (!source) {
      process.stdout.write(
        `${f.name}: skipped, no source in ${cfg.file} uses adapter ${f.adapter}\n`,
      );
      continue;
    }
    const ids = new Map(
      (f.flow.expect?.calls ?? []).map((c) => [
        String(c.callId),
        freshCallId(String(c.callId), stamp++),
      ]),
    );
    const problems: string[] = [];
    const requests = rewrite(f.flow, ids);
    for (const r of requests) {
      const url = `${base}/hooks/${source.name}/${encodeURIComponent(source.token)}${r.query ? `?${r.query}` : ''}`;
      let res: Response;
      try {
        res = await fetch(url, {
          method: r.method,
          headers: r.contentType ? { 'content-type': r.contentType } : {},
          ...(r.method === 'GET' || r.method === 'HEAD' ? {} : { body: r.body ?? '' }),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
        fail(
          `cannot reach the relay at ${base} (${cause}): start it first (callrelay start), or name it with --to`,
        );
      }
      const text = await res.text();
      if (res.ok) sent++;
      else {
        refused++;
        problems.push(`${r.label ?? r.method}: ${res.status} ${text.slice(0, 200)}`);
      }
    }
    made.push(...ids.values());
    const calls = [...ids.values()].join(', ') || '(no call id in the flow)';
    process.stdout.write(
      `${f.name} -> ${source.name}: call ${calls}, ${requests.length - problems.length}/${requests.length} accepted` +
        `${problems.length ? `\n  ${problems.join('\n  ')}` : ''}\n`,
    );
  }
  process.stdout.write(
    `\n${sent} request(s) accepted, ${refused} refused, ${made.length} call(s) made.\n` +
      (made.length
        ? `See them: callrelay calls (one in full, with what each target got: callrelay calls ${made[0]}),\n` +
          `or the console: ${base}/console\n`
        : ''),
  );
  if (refused) process.exit(1);
}
