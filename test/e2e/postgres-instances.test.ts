// Two relay instances on one PostgreSQL database, requests alternating between them (each call's
// webhooks split across both): every call folds right and reaches HubSpot exactly once.

import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  freshPostgresDatabase,
  goldenCases,
  sendFlowRequest,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-pg-token-00000';

describe('several instances on PostgreSQL', () => {
  const relays: Relay[] = [];
  let hs: FakeHubspot;
  afterAll(async () => {
    for (const r of relays) await r.close();
    await hs?.close();
  });

  it('share the work: right records, one engagement per call', async () => {
    hs = await new FakeHubspot(HS_TOKEN).start();
    const url = await freshPostgresDatabase(inject('pgUrl'));
    for (let i = 0; i < 2; i++) {
      const file = writeRelayYaml(tempDir(), {
        more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n`,
      });
      const cfg = loadConfig(file, {});
      relays.push(
        await startRelay(
          {
            ...cfg,
            store: {
              postgres: url,
              maxEventsPerCall: cfg.store.maxEventsPerCall,
              keepRequestsDays: 90,
            },
          },
          undefined,
          {
            delivery: { pollMs: 20 },
          },
        ),
      );
    }
    // Flows whose call ids do not collide, sent round-robin across the two instances.
    const flows = goldenCases().filter((c) =>
      [
        '3cx-v2-incoming-attended-transfer',
        '3cx-v2-incoming-blind-transfer',
        '3cx-v2-ringgroup-missed',
        '3cx-v3-makecall-missed-then-answered-with-ai',
        'callerdesk-live-then-report',
      ].includes(c.flow.name),
    );
    let n = 0;
    for (const c of flows) {
      for (const r of c.flow.requests) {
        const res = await sendFlowRequest(relays[n++ % 2]!.port, c.adapter, r);
        if (res) expect(res.status).toBe(200);
      }
    }
    const expected = flows.flatMap((c) =>
      c.flow.expect!.calls.map((e) => ({ adapter: c.adapter, e })),
    );
    for (let t = 0; t < 400 && hs.calls.size < expected.length; t++)
      await new Promise((r) => setTimeout(r, 25));
    for (const r of relays) {
      await r.pipeline.drain();
      await r.delivery.settle();
    }
    const { compareCalls } = await import('../../src/flows.js');
    const calls = (await relays[0]!.store.listCalls({ limit: 100 })).map((c) => c.record);
    for (const c of flows) {
      const mine = calls.filter(
        (x) => x.source === c.adapter && c.flow.expect!.calls.some((e) => e.callId === x.callId),
      );
      expect(compareCalls(c.flow.expect!.calls, mine), c.flow.name).toEqual([]);
    }
    expect(hs.calls.size).toBe(expected.length);
    const tokens = [...hs.calls.values()].map((x) => x.properties.hs_call_external_id);
    expect(new Set(tokens).size).toBe(tokens.length);
  }, 60_000);

  it('share console sessions: signed in on one, signed out on the other', async () => {
    const url = await freshPostgresDatabase(inject('pgUrl'));
    const pair: Relay[] = [];
    for (let i = 0; i < 2; i++) {
      const cfg = loadConfig(writeRelayYaml(tempDir()), {});
      const relay = await startRelay({
        ...cfg,
        store: {
          postgres: url,
          maxEventsPerCall: cfg.store.maxEventsPerCall,
          keepRequestsDays: 90,
        },
      });
      relays.push(relay);
      pair.push(relay);
    }
    const [a, b] = pair as [Relay, Relay];
    const base = (r: Relay): string => `http://127.0.0.1:${r.port}`;
    const page = (r: Relay, cookie: string) =>
      fetch(`${base(r)}/console`, { headers: { cookie }, redirect: 'manual' });
    const signed = await fetch(`${base(a)}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: base(a) },
      body: new URLSearchParams({ token: TOKENS.admin }),
    });
    expect(signed.status).toBe(303);
    const cookie = signed.headers.get('set-cookie')!.split(';')[0]!;
    // Signed in on A, the session opens B too (behind a load balancer either may answer).
    const onB = await page(b, cookie);
    expect(onB.status).toBe(200);
    const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(await onB.text())![1]!;
    const out = await fetch(`${base(b)}/console/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, origin: base(b) },
      body: new URLSearchParams({ _csrf: csrf }),
    });
    expect(out.status).toBe(303);
    // Signed out on B: A refuses the cookie too.
    const onA = await page(a, cookie);
    expect(onA.status).toBe(303);
    expect(onA.headers.get('location')).toContain('/console/sign-in');
  });
});
