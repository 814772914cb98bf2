// A burst of 500 calls in 10 s against a fake HubSpot that allows 100 requests per 10 s (and 5
// searches per second): the relay paces itself, so HubSpot never answers 429, every call arrives
// exactly once, and the CRM requests per call are reported. Once the window is spent the calls
// waiting for it go in batch creates, so the burst costs fewer requests than calls (it cost 1.04
// per call, and 44 s, when each call had its own create).

import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { tempDir, TOKENS, writeRelayYaml } from '../support.js';

const CALLS = 500;
const HS_TOKEN = 'pat-eu1-burst-token-0000';

describe('burst against HubSpot limits', () => {
  let hs: FakeHubspot;
  let relay: Relay;
  afterAll(async () => {
    await relay?.close();
    await hs?.close();
  });

  it('delivers 500 calls sent in 10 s with zero 429s', async () => {
    hs = await new FakeHubspot(HS_TOKEN).start();
    for (let n = 0; n < 20; n++)
      hs.addContact({ firstname: `C${n}`, phone: `+4207748526${String(n).padStart(2, '0')}` });
    const config = writeRelayYaml(tempDir(), {
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n`,
    });
    relay = await startRelay(loadConfig(config, {}));
    const url = `http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`;
    const t0 = Date.now();
    for (let i = 0; i < CALLS; i++) {
      const id = `260601100000_${i}`;
      const caller = `4207748526${String(i % 20).padStart(2, '0')}`;
      // Spread over 10 s: one call every 20 ms.
      const wait = t0 + i * 20 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      for (const body of [
        `{"Event":"incomingcall_started","Callerid":"${caller}","User":"117","Trtype":"NotDef","Did":"","Id":"${id}-1"}`,
        `{"Event":"incoming","Callerid":"${caller}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:09","Id":"${id}-1"}`,
      ]) {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        expect(res.status).toBe(200);
      }
    }
    const sent = Date.now() - t0;
    // No wall-clock check on the sending: a busy machine stretches the burst a little, and what
    // the test is about (no 429, exactly once, batches under a backlog) is asserted below.
    for (let t = 0; t < 1800 && hs.calls.size < CALLS; t++)
      await new Promise((r) => setTimeout(r, 100));
    await relay.delivery.settle();

    const requests = hs.log.length;
    const byPath = new Map<string, number>();
    for (const r of hs.log) {
      const k = `${r.method} ${r.path}`;
      byPath.set(k, (byPath.get(k) ?? 0) + 1);
    }
    console.log(
      `burst: ${CALLS} calls sent in ${sent} ms; ${hs.calls.size} engagements after ${Date.now() - t0} ms; ${requests} HubSpot requests = ${(requests / CALLS).toFixed(3)} per call; 429s: ${hs.tooManyRequests}`,
      Object.fromEntries(byPath),
      `batch sizes: ${hs.batchSizes.join(', ')}`,
    );
    expect(hs.tooManyRequests).toBe(0);
    expect(hs.calls.size).toBe(CALLS);
    expect(new Set([...hs.calls.values()].map((c) => c.properties.hs_call_external_id)).size).toBe(
      CALLS,
    );
    expect(hs.batchSizes.length).toBeGreaterThan(0);
    expect(requests / CALLS).toBeLessThan(0.75);
    expect(await relay.store.listDeliveries({ state: 'due', limit: 1 })).toEqual([]);
  }, 180_000);
});
