// `callrelay calls`: the latest call records straight from the store, with how each stands with
// each target, for a look without the admin API (--json: the records as the CRMs get them).
// `callrelay calls ID`: one call, and per target every request made for it; a dry-run target's
// requests with the bodies the CRM would have got.

import { deliveryBadge, skippedReason } from '../domain/delivery.js';
import { talkTimeSec } from '../domain/talk.js';
import { deliveriesWithAttempts } from '../store/delivery-views.js';
import type { CallRow, DeliveryRow, Store } from '../store/types.js';
import { printTable, withStore } from './util.js';

export interface CallsOptions {
  config?: string;
  limit: string;
  json?: boolean;
  source?: string;
}

export async function cmdCalls(ids: string[], values: CallsOptions): Promise<void> {
  // The mark comes from the row (the run that made it), not from what the target is now.
  const badge = (d: DeliveryRow): string =>
    `${d.target}:${deliveryBadge(d).kind}${skippedReason(d) !== undefined ? '(skipped)' : ''}${d.dryRun ? '(dry run)' : ''}`;
  await withStore(values, async (store) => {
    if (ids.length) {
      for (const id of ids) await showCall(store, id, values, badge);
      return;
    }
    const rows = await store.listCalls({
      limit: Number(values.limit) || 20,
      ...(values.source ? { source: values.source } : {}),
    });
    if (values.json) return printJson(rows.map((r) => r.record));
    const deliveries = await store.deliveriesOf(
      rows.map((r) => ({ source: r.record.source, callId: r.record.callId })),
    );
    // "hubspot:delivered pipedrive:retrying" in one column.
    const delivery = (source: string, callId: string): string =>
      deliveries
        .filter((d) => d.source === source && d.callId === callId)
        .map(badge)
        .join(' ');
    printTable(rows.map(callLine(delivery)), 'no calls yet');
  });
}

const callLine =
  (delivery: (source: string, callId: string) => string) =>
  ({ record: c, updatedAt }: CallRow): Record<string, unknown> => ({
    started: c.startedAt.replace('T', ' ').slice(0, 19),
    source: c.source,
    call: c.callId,
    dir: c.direction,
    status: c.status,
    outcome: c.outcome,
    number: c.externalE164 ?? c.externalNumber,
    agent: c.agent,
    talk: talkTimeSec(c),
    rec: c.recordings.length,
    ai: c.ai ? 'yes' : '',
    delivery: delivery(c.source, c.callId) || null,
    updated: updatedAt.replace('T', ' ').slice(0, 19),
  });

function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Requests shown per delivery: the latest run or two is what an admin wants to read. */
const SHOWN_ATTEMPTS = 20;

async function showCall(
  store: Store,
  callId: string,
  values: CallsOptions,
  badge: (d: DeliveryRow) => string,
): Promise<void> {
  const rows = await store.getCalls(callId, values.source);
  if (!rows.length)
    throw new Error(`no call "${callId}"${values.source ? ` from ${values.source}` : ''}`);
  const deliveries = await deliveriesWithAttempts(
    store,
    rows.map((r) => ({ source: r.record.source, callId: r.record.callId })),
    SHOWN_ATTEMPTS,
  );
  if (values.json) {
    const out = rows.map((r) => ({
      record: r.record,
      deliveries: deliveries
        .filter((x) => x.delivery.source === r.record.source)
        .map((x) => ({ ...x.delivery, attempts: x.attempts })),
    }));
    return printJson(out);
  }
  for (const r of rows) {
    printTable(
      [callLine(() => '')(r)].map(({ delivery: _, ...rest }) => rest),
      '',
    );
    const mine = deliveries.filter((x) => x.delivery.source === r.record.source);
    if (!mine.length) process.stdout.write('\nno deliveries (no route sends this call anywhere)\n');
    for (const { delivery: d, attempts: newest } of mine) {
      const skipped = skippedReason(d);
      process.stdout.write(
        `\n${badge(d)}${d.lastError ? `  last error: ${d.lastError}` : ''}${skipped !== undefined ? `  skipped: ${skipped}` : ''}\n`,
      );
      // Oldest first, as the requests were made.
      const attempts = [...newest].reverse();
      for (const a of attempts) {
        const http = a.method ? `${a.method} ${a.path ?? ''} -> ${a.status ?? 'no answer'}` : '';
        process.stdout.write(
          `  ${a.startedAt.replace('T', ' ').slice(0, 19)}  ${a.result.padEnd(9)} ${a.operation}` +
            `${http ? `: ${http}` : ''}${a.error ? `  (${a.error})` : ''}\n`,
        );
        if (a.sent) process.stdout.write(`${indent(pretty(a.sent), '      ')}\n`);
      }
    }
  }
}

function pretty(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

const indent = (text: string, by: string): string =>
  text
    .split('\n')
    .map((l) => by + l)
    .join('\n');
