// One delivery of a call record as a dry run, outside the engine: what `callrelay map --target`
// prints and what a recipe's golden cases compare. The target must have been made with dryRun,
// so its sandbox answers; every request it would have sent is kept, bodies included.

import type { CallRecord } from '../../domain/model.js';
import type { Logger } from '../../telemetry/log.js';
import type { Target } from '../types.js';
import { traceRequests, type RequestTrace } from './trace.js';

/** The requests `target` makes to bring the CRM up to date with `record` (none saved anywhere). */
export async function dryRunDelivery(
  target: Target,
  record: CallRecord,
  log: Logger,
  id = 1,
): Promise<{ traces: RequestTrace[]; error: string | null }> {
  const traces: RequestTrace[] = [];
  let error: string | null = null;
  try {
    await traceRequests(traces, () =>
      target.deliver({
        job: {
          id,
          target: target.name,
          source: record.source,
          callId: record.callId,
          rev: 1,
          attempts: 0,
          firstFailedAt: null,
          remote: {},
          record,
        },
        save: () => Promise.resolve(),
        log,
      }),
    );
  } catch (err) {
    error = (err as Error).message;
  }
  return { traces, error };
}
