// `callrelay status`: how the relay stands, read from the store (so it answers with the relay
// stopped, and for every instance sharing a PostgreSQL store): per source the newest request it
// accepted and the newest it refused (a PBX knocking with a stale token shows here), per target
// what waits, retries and gave up.

import { UNKNOWN_SOURCE, type Refusal } from '../store/types.js';
import { printTable, withStore } from './util.js';

const when = (iso: string | null | undefined): string =>
  iso ? iso.replace('T', ' ').slice(0, 19) : '-';

const refusalText = (r: Refusal | undefined): string =>
  r
    ? `${when(r.at)} ${r.reason} from ${r.address || 'an unknown address'} ${r.path} ` +
      `(${r.status} ${r.code}, ${r.count} refused so far)`
    : 'none';

export async function cmdStatus(values: { config?: string; json?: boolean }): Promise<void> {
  await withStore(values, async (store, cfg) => {
    const [activity, refusals, stats] = await Promise.all([
      store.sourceActivity(),
      store.refusals(),
      store.stats(),
    ]);
    const seen = new Map(activity.map((a) => [a.source, a]));
    const refused = new Map(refusals.map((r) => [r.source, r]));
    const counts = new Map(stats.targets.map((t) => [t.target, t]));
    const sources = cfg.sources.map((s) => ({
      source: s.name,
      lastAccepted: seen.get(s.name) ?? null,
      lastRefused: refused.get(s.name) ?? null,
    }));
    const targets = cfg.targets.map((t) => {
      const c = counts.get(t.name);
      return {
        target: t.name,
        waiting: c?.due ?? 0,
        retrying: c?.retrying ?? 0,
        dead: c?.dead ?? 0,
        delivered: c?.done ?? 0,
        oldestDueAt: c?.oldestDueAt ?? null,
      };
    });
    const nowhere = refused.get(UNKNOWN_SOURCE) ?? null;
    if (values.json) {
      const out = { store: store.backend, sources, unknownSource: nowhere, targets };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    process.stdout.write(`Sources (${cfg.file}, ${store.backend} store)\n`);
    printTable(
      sources.map((s) => ({
        source: s.source,
        'last accepted': s.lastAccepted
          ? `${when(s.lastAccepted.lastReceivedAt)} #${s.lastAccepted.lastId} ${s.lastAccepted.lastState}`
          : 'none yet',
        'last refused': refusalText(s.lastRefused ?? undefined),
      })),
      'no sources in relay.yaml',
    );
    if (nowhere)
      process.stdout.write(
        `\nA request to a source that is not in relay.yaml (check the URL in the phone system):\n` +
          `  ${refusalText(nowhere)}\n`,
      );
    process.stdout.write('\nTargets\n');
    printTable(
      targets.map((t) => ({
        target: t.target,
        waiting: t.waiting,
        retrying: t.retrying,
        dead: t.dead,
        delivered: t.delivered,
        'oldest due': when(t.oldestDueAt),
      })),
      'no targets in relay.yaml: calls are stored, not delivered',
    );
  });
}
