// `callrelay unmapped`: stored requests that no adapter rule could map, with the reason; their ids
// are what `callrelay replay` takes after the adapter is fixed.

import { printTable, withStore } from './util.js';

export async function cmdUnmapped(values: { config?: string; limit: string }): Promise<void> {
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
