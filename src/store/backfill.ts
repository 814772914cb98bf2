// A whole backfill (Store.backfill, batch after batch), for the CLI, the admin API and the console
// alike: a dry run counts, a real run queues, and progress is reported after each batch.

import type { BackfillQuery, Store } from './types.js';

export interface BackfillTotals {
  /** Calls in the range without a delivery for the target. */
  scanned: number;
  /** Of them, those the routes send to the target now (queued unless a dry run). */
  matched: number;
}

const BATCH = 500;

export async function backfillAll(
  store: Store,
  q: Omit<BackfillQuery, 'after' | 'limit'>,
  onBatch?: (t: BackfillTotals) => void,
): Promise<BackfillTotals> {
  const totals: BackfillTotals = { scanned: 0, matched: 0 };
  let after: BackfillQuery['after'];
  do {
    const b = await store.backfill({ ...q, after, limit: BATCH });
    totals.scanned += b.scanned;
    totals.matched += b.matched;
    onBatch?.({ ...totals });
    after = b.next;
  } while (after);
  return totals;
}
