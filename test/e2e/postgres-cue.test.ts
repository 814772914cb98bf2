// Two relays on one PostgreSQL database: a webhook that relay A receives and folds reaches the live
// cue (onChange: the console's live views, the agent pages' ringing card) of relay B, which folds
// nothing itself, through the fold's NOTIFY rather than B's next look at the store.

import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import {
  freshPostgresDatabase,
  goldenCases,
  sendFlowRequest,
  tempDir,
  writeRelayYaml,
} from '../support.js';

const relays: Relay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.close();
});

/** Wait for a condition (never a fixed sleep), or fail saying what. */
async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the live cue across instances on PostgreSQL', () => {
  it("fires on relay B when relay A folds a call, and stops when B's listener leaves", async () => {
    const url = await freshPostgresDatabase(inject('pgUrl'));
    for (let i = 0; i < 2; i++) {
      const cfg = loadConfig(writeRelayYaml(tempDir()), {});
      relays.push(
        await startRelay({
          ...cfg,
          store: {
            postgres: url,
            maxEventsPerCall: cfg.store.maxEventsPerCall,
            keepRequestsDays: 90,
          },
        }),
      );
    }
    const [a, b] = relays as [Relay, Relay];
    // B folds nothing: whatever its cue hears comes from A.
    await b.pipeline.stop();
    let heard = 0;
    const unsubscribe = b.onChange(() => heard++);
    // Its LISTEN connection is up when the server says so.
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const listening = async (): Promise<number> =>
        (
          await c.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'callrelay listen'
               AND query LIKE 'LISTEN %'`,
          )
        ).rows[0]!.n;
      await until('B listens', async () => (await listening()) === 1);

      const flow = goldenCases().find((x) => x.flow.name === '3cx-v2-ringgroup-missed')!.flow;
      const [first] = flow.requests;
      await sendFlowRequest(a.port, '3cx', first!);
      await a.pipeline.drain();
      await until("B's cue fires", () => heard > 0);
      const callId = (flow.expect!.calls[0] as { callId: string }).callId;
      expect((await b.store.getCalls(callId, '3cx')).length).toBe(1);

      // Nobody on B listens any more: its LISTEN connection goes.
      unsubscribe();
      await until('B stops listening', async () => (await listening()) === 0);
    } finally {
      await c.end();
    }
  }, 60_000);
});
