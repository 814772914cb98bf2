// PostgreSQL stopped for 10 s under load: the relay answers 503 (never 2xx without a commit),
// /readyz fails, and everything resumes by itself when PostgreSQL is back.

import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { LocalPostgres } from '../harness/postgres.mjs';
import { tempDir, TOKENS, writeRelayYaml } from '../support.js';

describe('PostgreSQL outage', () => {
  let pg: LocalPostgres | undefined;
  let relay: Relay | undefined;
  afterAll(async () => {
    await relay?.close().catch(() => {});
    await pg?.destroy();
  });

  it('answers 503 while it is down and resumes by itself', async () => {
    pg = await LocalPostgres.create();
    await pg.start();
    const url = await pg.createDatabase('relay');
    const cfg = loadConfig(writeRelayYaml(tempDir()), {});
    relay = await startRelay({
      ...cfg,
      store: { postgres: url, maxEventsPerCall: cfg.store.maxEventsPerCall, keepRequestsDays: 90 },
    });
    const base = `http://127.0.0.1:${relay.port}`;
    const acked: string[] = [];
    let i = 0;
    const send = async (): Promise<number> => {
      const id = `261101100000_${i++}`;
      const res = await fetch(`${base}/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"Event":"ringing","Callerid":"1","User":"800","Id":"${id}-0"}`,
      });
      if (res.status === 200) acked.push(id);
      else
        expect((await res.json()) as unknown).toMatchObject({
          error: { code: 'RELAY_ERR_STORE_UNAVAILABLE' },
        });
      return res.status;
    };
    for (let k = 0; k < 20; k++) expect(await send()).toBe(200);

    await pg.stop();
    const down = Date.now();
    const statuses: number[] = [];
    while (Date.now() - down < 10_000) {
      statuses.push(await send());
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.every((s) => s === 503)).toBe(true);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);

    await pg.start();
    let ready = 0;
    for (let t = 0; t < 100 && ready !== 200; t++) {
      ready = (await fetch(`${base}/readyz`)).status;
      if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready).toBe(200);
    for (let k = 0; k < 20; k++) expect(await send()).toBe(200);
    await relay.pipeline.drain();
    const calls = await relay.store.listCalls({ limit: 1000 });
    expect(new Set(calls.map((c) => c.record.callId))).toEqual(new Set(acked));
    expect(await relay.store.countInbox()).toMatchObject({ pending: 0, applied: acked.length });
  }, 90_000);
});
