// `callrelay deliveries`: what is waiting to reach a CRM and why (settle window, retrying after a
// failure with the CRM's last answer and the next try, dead), oldest due first per state.

import { badgeText, deliveryBadge, skippedReason } from '../domain/delivery.js';
import type { DeliveryState } from '../store/types.js';
import { printTable, withStore } from './util.js';

export async function cmdDeliveries(values: {
  config?: string;
  state?: 'due' | 'retrying' | 'dead' | 'done';
  target?: string;
  limit: string;
  json?: boolean;
}): Promise<void> {
  const state = values.state;
  const limit = Number(values.limit) || 50;
  await withStore(values, async (store) => {
    // Without --state: everything not delivered yet (due, which includes retrying, and dead).
    const states: (DeliveryState | 'retrying')[] = state ? [state] : ['due', 'dead'];
    const rows = [];
    for (const s of states)
      rows.push(...(await store.listDeliveries({ state: s, target: values.target, limit })));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    const view = rows.map((d) => ({
      id: `dl-${d.id}`,
      target: d.target,
      source: d.source,
      call: d.callId,
      state: `${badgeText(deliveryBadge(d))}${d.dryRun ? ' (dry run)' : ''}`,
      why:
        d.lastError ??
        (skippedReason(d) !== undefined ? `skipped: ${skippedReason(d)}` : null) ??
        (d.state === 'due' ? 'settle window or next in line' : null),
    }));
    printTable(view, 'nothing waiting: every call is delivered');
  });
}
