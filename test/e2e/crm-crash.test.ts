// Kill the relay with SIGKILL while it is creating HubSpot engagements, one by one or in batches
// (a backlog behind a tight rate limit): after a restart every call is in HubSpot exactly once
// (creates whose answers were lost are found, not repeated), with its later recording.

import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { freePort, spawnRelay, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const CALLS = 40;
const HS_TOKEN = 'pat-eu1-crash-token-000';

describe('crash safety of CRM delivery (SIGKILL while creating)', () => {
  const children: ChildProcess[] = [];
  let hs: FakeHubspot;
  afterAll(async () => {
    children.forEach((c) => c.kill('SIGKILL'));
    await hs?.close();
  });

  it.each([
    ['one by one', '    concurrency: 4\n'],
    ['in batches', '    rateLimit: { requests: 4, perSeconds: 1 }\n'],
  ])(
    'ends with every call exactly once in HubSpot (created %s)',
    async (how, settings) => {
      await hs?.close();
      hs = await new FakeHubspot(HS_TOKEN).start();
      hs.delayMs = 60;
      const port = await freePort();
      const config = writeRelayYaml(tempDir(), {
        port,
        more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n    searchLagSec: 0.5\n${settings}`,
      });
      const first = await spawnRelay(config, port);
      children.push(first);
      const url = `http://127.0.0.1:${port}/hooks/3cx/${TOKENS.threecx}`;
      const post = async (body: string): Promise<void> => {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        expect(res.status).toBe(200);
      };
      for (let i = 0; i < CALLS; i++) {
        await post(
          `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:08","Id":"260801100000_${i}-1"}`,
        );
      }
      // Killed while creates are under way: after 8 single ones, or while a batch is in HubSpot's
      // hands (it is processed, but its answer never reaches the relay).
      const underWay =
        how === 'in batches'
          ? () => hs.arrived.some((r) => r.endsWith('/calls/batch/create'))
          : () => hs.calls.size >= 8;
      for (let t = 0; t < 200 && !underWay(); t++) await new Promise((r) => setTimeout(r, 10));
      expect(underWay()).toBe(true);
      expect(hs.calls.size).toBeLessThan(CALLS); // killed mid-way
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));

      hs.delayMs = 0;
      const second = await spawnRelay(config, port);
      children.push(second);
      // The recordings arrive after the restart: the same engagements must be updated.
      for (let i = 0; i < CALLS; i++)
        await post(
          `{"Event":"recording","FileUrls":["https://pbx.example.com/rec/260801100000_${i}-1-1.mp3"],"Id":"260801100000_${i}-1"}`,
        );
      const complete = (): boolean =>
        hs.calls.size >= CALLS &&
        [...hs.calls.values()].every((c) => c.properties.hs_call_recording_url);
      for (let t = 0; t < 600 && !complete(); t++) await new Promise((r) => setTimeout(r, 50));

      const tokens = [...hs.calls.values()].map((c) => c.properties.hs_call_external_id);
      expect(new Set(tokens).size).toBe(tokens.length); // no duplicates
      expect(tokens.length).toBe(CALLS); // none lost
      for (const c of hs.calls.values()) {
        const id = c.properties.hs_call_external_id!.split(':')[2];
        expect(c.properties.hs_call_recording_url).toBe(
          `https://pbx.example.com/rec/${id}-1-1.mp3`,
        );
        expect(c.properties.hs_call_duration).toBe('8000');
      }
    },
    90_000,
  );
});
