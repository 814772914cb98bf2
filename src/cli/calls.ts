// `callrelay calls`: the latest call records straight from the store, for a look without the
// admin API (--json: the records as the CRMs get them).

import { parseArgs } from 'node:util';
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
      updated: updatedAt.replace('T', ' ').slice(0, 19),
    }));
    printTable(view, 'no calls yet');
  });
}
