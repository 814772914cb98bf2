// `callrelay dead`: deliveries that gave up, with the CRM's last answer; their dl-ids are what
// `callrelay replay` takes to try again.

import { printTable, withStore } from './util.js';

export async function cmdDead(values: { config?: string; limit: string }): Promise<void> {
  await withStore(values, async (store) => {
    const rows = await store.listDeliveries({ state: 'dead', limit: Number(values.limit) || 50 });
    const view = rows.map((d) => ({
      id: `dl-${d.id}`,
      target: d.target,
      source: d.source,
      call: d.callId,
      attempts: d.attempts,
      since: (d.firstFailedAt ?? d.updatedAt).replace('T', ' ').slice(0, 19),
      reason: d.lastError,
    }));
    printTable(view, 'no dead letters');
  });
}
