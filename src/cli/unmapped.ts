// `callrelay unmapped`: stored requests that no adapter rule could map, with the reason; their ids
// are what `callrelay replay` takes after the adapter is fixed.

import { parseArgs } from 'node:util';
import { printTable, withStore } from './util.js';

export async function cmdUnmapped(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, limit: { type: 'string', default: '50' } },
  });
  await withStore(values, async (store) => {
    const rows = await store.listInbox({ state: 'unmapped', limit: Number(values.limit) || 50 });
    const view = rows.map((r) => ({
      id: r.id,
      received: r.receivedAt.replace('T', ' ').slice(0, 19),
      source: r.source,
      method: r.method,
      bytes: r.body.length,
      code: r.reasonCode,
      reason: r.reason,
    }));
    printTable(view, 'no unmapped requests');
  });
}
