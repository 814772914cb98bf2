// `callrelay dead`: deliveries that gave up, with the CRM's last answer; their dl-ids are what
// `callrelay replay` takes to try again.

import { parseArgs } from 'node:util';
import { printTable, withStore } from './util.js';

export async function cmdDead(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, limit: { type: 'string', default: '50' } },
  });
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
