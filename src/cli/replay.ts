// `callrelay replay`: map stored requests again after an adapter fix (ids, or --all-unmapped),
// and make dead deliveries due again (dl-ids, or --all) for a running relay to retry. Exits 1
// when anything named stays unmapped or was not found.

import { Pipeline } from '../pipeline/pipeline.js';
import { openStore } from '../runtime.js';
import { configFrom, fail } from './util.js';

export async function cmdReplay(
  positionals: string[],
  o: { config?: string; allUnmapped?: boolean; all?: boolean },
): Promise<void> {
  const values = { ...o, 'all-unmapped': o.allUnmapped };
  const dead = positionals.filter((p) => p.startsWith('dl-'));
  const inbox = positionals.filter((p) => !p.startsWith('dl-'));
  if (!positionals.length && !values['all-unmapped'] && !values.all)
    fail('usage: callrelay replay ID ... | --all-unmapped | dl-ID ... | --all', 2);
  const ids = inbox.map(Number);
  const deadIds = dead.map((d) => Number(d.slice(3)));
  if ([...ids, ...deadIds].some((n) => !Number.isInteger(n)))
    fail(
      'replay takes stored request ids (see `callrelay unmapped`) or dead-letter ids dl-N (see `callrelay dead`)',
      2,
    );
  const cfg = configFrom(values, { readOnly: true });
  const store = await openStore(cfg);
  let failed = 0;
  try {
    if (values.all || deadIds.length) {
      const n = await store.retryDeliveries(values.all ? 'dead' : deadIds);
      process.stdout.write(
        `${n} dead letter(s) due again; a running relay retries them within a second\n`,
      );
      if (!values.all && n < deadIds.length) failed++;
    }
    if (!ids.length && !values['all-unmapped']) return;
    const pipeline = new Pipeline(store, cfg.sources);
    const rows = values['all-unmapped']
      ? []
      : await Promise.all(ids.map((id) => store.getInbox(id)));
    if (values['all-unmapped']) {
      for (let after = 0; ;) {
        const page = await store.listInbox({ state: 'unmapped', limit: 500, afterId: after });
        if (!page.length) break;
        rows.push(...page);
        after = page.at(-1)!.id;
      }
    }
    let mapped = 0;
    for (const [i, row] of rows.entries()) {
      if (!row) {
        process.stdout.write(`#${ids[i]}: no such stored request\n`);
        continue;
      }
      const r = await pipeline.replay(row);
      if (r.status !== 'unmapped') mapped++;
      process.stdout.write(
        `#${row.id}: ${r.status}${r.status === 'unmapped' ? ` ${r.code}: ${r.message}` : ` (rule ${r.rule})`}\n`,
      );
    }
    if (mapped < rows.length) failed++;
    process.stdout.write(`${mapped} of ${rows.length} mapped\n`);
  } finally {
    await store.close();
  }
  if (failed) process.exit(1);
}
