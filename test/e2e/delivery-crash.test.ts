// Kill the relay with SIGKILL while deliveries are in flight: after a restart every call reaches
// the endpoint complete, per-call order holds, and repeats carry the same event id (so a receiver
// keeps each event once).

import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { WebhookReceiver } from '../../src/targets/http/fake.js';
import { freePort, spawnRelay, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const CALLS = 60;

describe('crash safety of delivery (SIGKILL while sending)', () => {
  const children: ChildProcess[] = [];
  let receiver: WebhookReceiver;
  afterAll(async () => {
    children.forEach((c) => c.kill('SIGKILL'));
    await receiver?.close();
  });

  it('delivers every call after a restart, in order, none lost', async () => {
    receiver = await new WebhookReceiver().start();
    receiver.delayMs = 40;
    const dir = tempDir();
    const port = await freePort();
    const config = writeRelayYaml(dir, {
      port,
      more: `targets:\n  - name: hook\n    type: http\n    url: ${receiver.url}\n    concurrency: 4\n`,
    });
    const first = await spawnRelay(config, port);
    children.push(first);
    const url = `http://127.0.0.1:${port}/hooks/3cx/${TOKENS.threecx}`;
    for (let i = 0; i < CALLS; i++) {
      const id = `260501100000_${i}`;
      for (const body of [
        `{"Event":"ringing","Callerid":"05552221133","User":"800","Usertype":"other","Did":"","Id":"${id}-0"}`,
        `{"Event":"incoming","Callerid":"05552221133","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:07","Id":"${id}-1"}`,
      ]) {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        expect(res.status).toBe(200);
      }
    }
    await receiver.waitFor(() => receiver.received.length >= 10);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const before = receiver.received.length;
    expect(before).toBeLessThan(CALLS * 2); // the kill came mid-delivery

    receiver.delayMs = 0;
    const second = await spawnRelay(config, port);
    children.push(second);
    const ended = (): Set<string> =>
      new Set(
        receiver.received
          .filter((r) => r.json.data.status === 'ended')
          .map((r) => r.json.subject as string),
      );
    await receiver.waitFor(() => ended().size === CALLS, 30_000);

    const bySubject = new Map<string, number[]>();
    for (const r of receiver.received)
      bySubject.set(r.json.subject, [
        ...(bySubject.get(r.json.subject) ?? []),
        r.json.callrelayrevision,
      ]);
    for (const [subject, revs] of bySubject) {
      // Per call, revisions never go backwards: a repeat is the same event again, never an older
      // one after a newer.
      for (let i = 1; i < revs.length; i++)
        expect(revs[i]!, `${subject}: ${revs.join(',')}`).toBeGreaterThanOrEqual(revs[i - 1]!);
    }
    for (const r of receiver.distinct())
      expect(r.json.id).toBe(`3cx:${r.json.subject}:${r.json.callrelayrevision}`);
    const last = new Map(receiver.received.map((r) => [r.json.subject as string, r.json.data]));
    for (const data of last.values())
      expect(data).toMatchObject({
        status: 'ended',
        outcome: 'answered',
        agent: '117',
        durationSec: 7,
      });
  }, 90_000);
});
