// Kill the relay with SIGKILL in the middle of a burst: after a restart, every request that was
// answered 2xx is in the store byte for byte and folded exactly once; senders retrying what was
// not acknowledged end with every call complete and nothing doubled.

import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { freePort, spawnRelay, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const CALLS = 400;

function callFlow(i: number): string[] {
  const id = `260301120000_${i}`;
  return [
    `{"Event":"ringing","Callerid":"05552221133","User":"800","Usertype":"other","Did":"","Id":"${id}-0"}`,
    `{"Event":"incomingcall_started","Callerid":"05552221133","User":"${100 + (i % 50)}","Trtype":"NotDef","Did":"","Id":"${id}-1"}`,
    `{"Event":"incoming","Callerid":"05552221133","User":"${100 + (i % 50)}","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:${String(i % 60).padStart(2, '0')}","Id":"${id}-1"}`,
    `{"Event":"recording","FileUrls":["https://pbx:5001/webapi/recording/${id}-1-1.mp3"],"Callerid":"05552221133","User":"${100 + (i % 50)}","Id":"${id}-1"}`,
  ];
}

describe('crash safety (SIGKILL during a burst)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

  it('loses no acknowledged request and folds each exactly once', async () => {
    const dir = tempDir();
    const port = await freePort();
    const config = writeRelayYaml(dir, { port });
    const url = `http://127.0.0.1:${port}/hooks/3cx/${TOKENS.threecx}`;
    const acked = new Map<number, string>(); // inbox id -> body
    const done = new Set<string>(); // "call:step" acknowledged

    const relay = await spawnRelay(config, port);
    children.push(relay);
    let killed = false;
    const sendAll = async (): Promise<void> => {
      let next = 0;
      const worker = async (): Promise<void> => {
        for (let i = next++; i < CALLS; i = next++) {
          const steps = callFlow(i);
          for (const [s, body] of steps.entries()) {
            if (done.has(`${i}:${s}`)) continue;
            try {
              const res = await fetch(url, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body,
              });
              if (res.status !== 200) return;
              const { id } = (await res.json()) as { id: number };
              acked.set(id, body);
              done.add(`${i}:${s}`);
            } catch {
              return; // connection refused or reset: the relay is gone
            }
            if (!killed && acked.size >= CALLS) {
              killed = true;
              relay.kill('SIGKILL');
            }
          }
        }
      };
      await Promise.all(Array.from({ length: 24 }, worker));
    };
    await sendAll();
    expect(killed).toBe(true);
    const ackedBeforeKill = acked.size;
    expect(ackedBeforeKill).toBeGreaterThanOrEqual(CALLS);
    expect(ackedBeforeKill).toBeLessThan(CALLS * 4);

    // Every acknowledged request is in the file, exactly as sent, even before a restart.
    const raw = new SqliteStore(join(dir, 'relay.db'));
    for (const [id, body] of acked)
      expect((await raw.getInbox(id))?.body.toString(), `inbox ${id}`).toBe(body);
    await raw.close();

    // Restart; the relay folds what was committed but not yet folded.
    const again = await spawnRelay(config, port);
    children.push(again);
    await sendAll(); // the senders retry what was never acknowledged
    expect(done.size).toBe(CALLS * 4);

    const admin = { authorization: `Bearer ${TOKENS.admin}` };
    for (let t = 0; t < 200; t++) {
      const { counts } = (await (
        await fetch(`http://127.0.0.1:${port}/api/inbox?limit=1`, { headers: admin })
      ).json()) as { counts: Record<string, number> };
      if (counts.pending === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    again.kill('SIGTERM');
    await new Promise((r) => again.once('exit', r));
    expect(again.exitCode).toBe(0);

    const store = new SqliteStore(join(dir, 'relay.db'));
    const counts = await store.countInbox();
    expect(counts.pending).toBe(0);
    expect(counts.unmapped).toBe(0);
    // Requests committed but unacknowledged at the kill were sent twice; nothing else was.
    expect(counts.applied).toBeGreaterThanOrEqual(CALLS * 4);
    expect(counts.applied).toBeLessThanOrEqual(CALLS * 4 + 24);

    const calls = await store.listCalls({ limit: CALLS + 10 });
    expect(calls).toHaveLength(CALLS);
    for (const { record: c } of calls) {
      const i = Number(c.callId.split('_')[1]);
      expect(c, c.callId).toMatchObject({
        status: 'ended',
        outcome: 'answered',
        agent: String(100 + (i % 50)),
        durationSec: i % 60,
        recordings: [`https://pbx:5001/webapi/recording/${c.callId}-1-1.mp3`],
        rang: ['800'],
      });
      // Folded exactly once per distinct event: four events, however often one was delivered.
      expect(c.events.map((e) => e.type)).toEqual(['ringing', 'answered', 'ended', 'recording']);
    }
    for (const id of acked.keys()) expect((await store.getInbox(id))!.state).toBe('applied');
    await store.close();
  }, 120_000);
});
