// `callrelay calls`: the latest call records straight from the store, with how each stands with
// each target, for a look without the admin API (--json: the records as the CRMs get them).

import { parseArgs } from 'node:util';
import { deliveryBadge } from '../domain/delivery.js';
import { printTable, withStore } from './util.js';

export async function cmdCalls(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      limit: { type: 'string', default: '20' },
      json: { type: 'boolean' },
    },
  });
  await withStore(values, async (store) => {
    const rows = await store.listCalls({ limit: Number(values.limit) || 20 });
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify(
          rows.map((r) => r.record),
          null,
          2,
        )}\n`,
      );
      return;
    }
    const deliveries = await store.deliveriesOf(
      rows.map((r) => ({ source: r.record.source, callId: r.record.callId })),
    );
    // "hubspot:delivered pipedrive:retrying" in one column.
    const delivery = (source: string, callId: string): string =>
      deliveries
        .filter((d) => d.source === source && d.callId === callId)
        .map((d) => `${d.target}:${deliveryBadge(d).kind}`)
        .join(' ');
    const view = rows.map(({ record: c, updatedAt }) => ({
      started: c.startedAt.replace('T', ' ').slice(0, 19),
      source: c.source,
      call: c.callId,
      dir: c.direction,
      status: c.status,
      outcome: c.outcome,
      number: c.externalE164 ?? c.externalNumber,
      agent: c.agent,
      secs: c.durationSec,
      rec: c.recordings.length,
      ai: c.ai ? 'yes' : '',
      delivery: delivery(c.source, c.callId) || null,
      updated: updatedAt.replace('T', ' ').slice(0, 19),
    }));
    printTable(view, 'no calls yet');
  });
}
