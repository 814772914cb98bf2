// A call's deliveries with their newest attempts, as the admin API and `callrelay calls <id>` show
// them: one answer in which a delivery's state never lags behind the attempts listed with it.

import type { AttemptRow, CallKey, DeliveryRow, Store } from './types.js';

export interface DeliveryWithAttempts {
  delivery: DeliveryRow;
  /** Newest first. */
  attempts: AttemptRow[];
}

/**
 * Each delivery of `calls` with its newest `limit` attempts (none when `limit` is 0). These are
 * separate reads, and a delivery run may commit between them. A run writes its attempts and its
 * outcome in one transaction, so the attempts are read first and the deliveries' state after them:
 * that state then includes the outcome of every attempt listed. Read the other way round, a run
 * that ended between the two reads showed its failed attempt next to a delivery that had not
 * failed yet. The state can still be newer than the attempts (a run that ended after they were
 * read), never older.
 */
export async function deliveriesWithAttempts(
  store: Store,
  calls: CallKey[],
  limit: number,
): Promise<DeliveryWithAttempts[]> {
  const attempts = new Map<number, AttemptRow[]>();
  const attemptsOf = async (id: number): Promise<AttemptRow[]> =>
    limit ? await store.listAttempts({ deliveryId: id, limit }) : [];
  if (limit)
    for (const d of await store.deliveriesOf(calls)) attempts.set(d.id, await attemptsOf(d.id));
  const out: DeliveryWithAttempts[] = [];
  for (const d of await store.deliveriesOf(calls))
    // A delivery made since the first read (a new route) has its attempts read now.
    out.push({ delivery: d, attempts: attempts.get(d.id) ?? (await attemptsOf(d.id)) });
  return out;
}
